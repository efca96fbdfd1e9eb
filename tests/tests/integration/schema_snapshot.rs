//! `schema/subject.graphql` is the SDL of the example configuration, kept in step with it.

use subject_gateway::config::Config;
use subject_gateway_tests::config_dir;

#[test]
fn the_committed_sdl_matches_the_declarations() -> anyhow::Result<()> {
    let config = Config::load(&config_dir().join("gateway.toml"))?;
    let sdl = config.build_offline_service()?.sdl();
    let path = config_dir().join("../schema/subject.graphql");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &sdl)?;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema/subject.graphql is stale: run `cargo run -- schema > schema/subject.graphql` (or UPDATE_SNAPSHOTS=1 cargo nextest run)"
    );
    Ok(())
}
