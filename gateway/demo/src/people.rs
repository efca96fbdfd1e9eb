//! The reference world's people: synthetic people across the five domains (accounts, billing,
//! uploads, helpdesk, analytics), the same for the same seed, with everything each store holds
//! about them. Seeding them into the stores is `seed.rs`.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

const FIRST_NAMES: &[&str] = &[
    "Alice", "Bruno", "Chloé", "Dmitri", "Emma", "Farah", "Gustav", "Hana", "Ivan", "Júlia", "Kofi", "Lena",
    "Mateo", "Nora", "Olu", "Priya", "Quentin", "Rosa", "Sven", "Tomás", "Uma", "Viktor", "Wen", "Yara",
    "Zoë",
];
// Few surnames, so that many people share one (lookups must never match by name).
const LAST_NAMES: &[&str] = &[
    "Smith", "García", "Müller", "Kowalski", "Nguyen", "O'Brien", "Rossi", "Tanaka", "Okafor", "Larsen",
];
const COMPANIES: &[&str] = &[
    "Acme Ltd",
    "Globex",
    "Initech",
    "Umbrella GmbH",
    "Stark Industries",
    "Wayne Enterprises",
];
const COUNTRIES: &[&str] = &["GB", "DE", "FR", "ES", "PL", "NL", "US", "JP", "NG", "BR"];
const CITIES: &[&str] = &[
    "London",
    "Berlin",
    "Paris",
    "Madrid",
    "Warsaw",
    "Amsterdam",
    "Boston",
    "Osaka",
    "Lagos",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",
];
const BRANDS: &[&str] = &["visa", "mastercard", "amex"];

/// One synthetic person and everything the two databases hold about them.
#[derive(Debug, Clone)]
pub struct Person {
    pub user_id: i64,
    /// As stored in accounts: mixed case for some people.
    pub email: String,
    pub full_name: String,
    pub company: Option<String>,
    pub country: String,
    pub date_of_birth: String,
    pub marketing_opt_in: bool,
    pub created_at: String,
    pub sessions: Vec<Session>,
    pub preferences: Option<Preferences>,
    pub customer: Option<Customer>,
    pub uploads: Vec<Upload>,
}

/// An uploaded image: its metadata document and its bytes.
#[derive(Debug, Clone)]
pub struct Upload {
    /// A MongoDB ObjectId in hex.
    pub id: String,
    pub filename: String,
    pub content_type: &'static str,
    pub storage_key: String,
    pub camera: Option<String>,
    /// Latitude and longitude, when the camera recorded them.
    pub gps: Option<(f64, f64)>,
    pub taken_at: String,
    pub tags: Vec<(&'static str, f64)>,
    pub uploaded_at: String,
    pub visibility: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub ip_address: String,
    pub user_agent: String,
    pub started_at: String,
    pub last_seen_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Preferences {
    pub language: String,
    pub timezone: String,
    pub theme: String,
    pub newsletter: bool,
    pub settings: String,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub address_line1: String,
    pub city: String,
    pub postal_code: String,
    pub tax_id: Option<String>,
    pub created_at: String,
    pub invoices: Vec<Invoice>,
    pub payment_methods: Vec<PaymentMethod>,
}

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub status: &'static str,
    pub currency: &'static str,
    pub amount_due_cents: i64,
    pub tax_rate: String,
    pub issued_at: String,
}

#[derive(Debug, Clone)]
pub struct PaymentMethod {
    pub id: String,
    pub brand: &'static str,
    pub last4: String,
    pub exp_month: i64,
    pub exp_year: i64,
    pub created_at: String,
}

/// `count` people, the same for the same `seed`. Ids start at `first_id`.
pub fn people(count: usize, seed: u64, first_id: i64) -> Vec<Person> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut session_id = first_id * 10;
    (0..count)
        .map(|n| {
            let user_id = first_id + n as i64;
            let first = *FIRST_NAMES.choose(&mut rng).unwrap_or(&"Alex");
            let last = *LAST_NAMES.choose(&mut rng).unwrap_or(&"Doe");
            let local = format!("{}.{}{}", ascii(first), ascii(last), user_id);
            // A third of the people signed up with capitals in their address.
            let email = if n % 3 == 0 {
                format!("{local}@Example.COM")
            } else {
                format!("{local}@example.com").to_lowercase()
            };
            let day = |rng: &mut StdRng| {
                format!(
                    "20{:02}-{:02}-{:02} {:02}:{:02}:{:02}",
                    rng.random_range(18..26),
                    rng.random_range(1..13),
                    rng.random_range(1..29),
                    rng.random_range(0..24),
                    rng.random_range(0..60),
                    rng.random_range(0..60)
                )
            };
            let sessions = (0..rng.random_range(0..5))
                .map(|_| {
                    session_id += 1;
                    Session {
                        id: session_id,
                        ip_address: format!(
                            "{}.{}.{}.{}",
                            rng.random_range(1..224),
                            rng.random_range(0..256),
                            rng.random_range(0..256),
                            rng.random_range(1..255)
                        ),
                        user_agent: (*AGENTS.choose(&mut rng).unwrap_or(&"curl/8")).to_owned(),
                        started_at: day(&mut rng),
                        last_seen_at: rng.random_bool(0.7).then(|| day(&mut rng)),
                    }
                })
                .collect();
            let preferences = rng.random_bool(0.7).then(|| Preferences {
                language: (*["en", "de", "fr", "es", "pl", "ja"]
                    .choose(&mut rng)
                    .unwrap_or(&"en"))
                .to_owned(),
                timezone: (*["Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
                    .choose(&mut rng)
                    .unwrap_or(&"UTC"))
                .to_owned(),
                theme: (*["light", "dark", "system"].choose(&mut rng).unwrap_or(&"system")).to_owned(),
                newsletter: rng.random_bool(0.3),
                settings: format!(
                    r#"{{"notifications":{{"email":{},"push":{}}},"density":"{}"}}"#,
                    rng.random_bool(0.5),
                    rng.random_bool(0.5),
                    ["compact", "comfortable"][rng.random_range(0..2)]
                ),
            });
            let company = rng
                .random_bool(0.6)
                .then(|| (*COMPANIES.choose(&mut rng).unwrap_or(&"Acme")).to_owned());
            // A quarter of the people never bought anything.
            let customer = (n % 4 != 3).then(|| {
                let id = format!(
                    "cus_{:08X}{}",
                    user_id.wrapping_mul(2_654_435_761) & 0xffff_ffff,
                    user_id
                );
                let invoices = (0..rng.random_range(0..6))
                    .map(|i| Invoice {
                        id: format!("in_{user_id}x{i}"),
                        number: format!("INV-{user_id:06}-{:04}", i + 1),
                        status: ["paid", "paid", "open", "void"][rng.random_range(0..4)],
                        currency: ["eur", "usd", "gbp"][rng.random_range(0..3)],
                        amount_due_cents: rng.random_range(500..250_000),
                        tax_rate: ["19.00", "20.00", "0.00", "7.50"][rng.random_range(0..4)].to_owned(),
                        issued_at: day(&mut rng),
                    })
                    .collect();
                let payment_methods = (0..rng.random_range(1..3))
                    .map(|i| PaymentMethod {
                        id: format!("pm_{user_id}x{i}"),
                        brand: BRANDS[rng.random_range(0..BRANDS.len())],
                        last4: format!("{:04}", rng.random_range(0..10_000)),
                        exp_month: rng.random_range(1..13),
                        exp_year: rng.random_range(2026..2032),
                        created_at: day(&mut rng),
                    })
                    .collect();
                Customer {
                    // Some pay from a separate billing address.
                    email: if n % 5 == 0 {
                        format!("billing+{user_id}@{}.example", ascii(last).to_lowercase())
                    } else {
                        email.to_lowercase()
                    },
                    id,
                    address_line1: format!("{} {} Street", rng.random_range(1..300), last),
                    city: (*CITIES.choose(&mut rng).unwrap_or(&"London")).to_owned(),
                    postal_code: format!("{:05}", rng.random_range(1000..99999)),
                    tax_id: rng
                        .random_bool(0.3)
                        .then(|| format!("VAT{:09}", rng.random_range(0..1_000_000_000))),
                    created_at: day(&mut rng),
                    invoices,
                    payment_methods,
                }
            });
            Person {
                user_id,
                email,
                full_name: format!("{first} {last}"),
                company,
                country: (*COUNTRIES.choose(&mut rng).unwrap_or(&"GB")).to_owned(),
                date_of_birth: format!(
                    "19{:02}-{:02}-{:02}",
                    rng.random_range(50..100),
                    rng.random_range(1..13),
                    rng.random_range(1..29)
                ),
                marketing_opt_in: rng.random_bool(0.4),
                created_at: day(&mut rng),
                sessions,
                preferences,
                customer,
                uploads: uploads_of(user_id),
            }
        })
        .collect()
}

/// A person's uploads, from an RNG of their own so that the other data stays as it was.
fn uploads_of(user_id: i64) -> Vec<Upload> {
    let mut rng = StdRng::seed_from_u64(user_id as u64 ^ 0x05ee_d0ff_11e5);
    (0..(user_id % 4) as usize)
        .map(|n| {
            let extension = if n % 2 == 0 { "jpg" } else { "png" };
            let filename = format!("IMG_{:04}.{extension}", rng.random_range(1000..9999));
            let mut bytes = if extension == "jpg" {
                vec![0xFF, 0xD8, 0xFF, 0xE0]
            } else {
                vec![0x89, b'P', b'N', b'G']
            };
            bytes.extend((0..rng.random_range(2_000..6_000)).map(|_| rng.random::<u8>()));
            Upload {
                id: format!("{:016x}{:08x}", user_id, n),
                storage_key: format!("uploads/{user_id}/{n}-{filename}"),
                filename,
                content_type: if extension == "jpg" {
                    "image/jpeg"
                } else {
                    "image/png"
                },
                camera: rng
                    .random_bool(0.7)
                    .then(|| ["Pixel 9", "iPhone 16", "Canon EOS R6"][n % 3].to_owned()),
                gps: rng
                    .random_bool(0.5)
                    .then(|| (rng.random_range(-60.0..70.0), rng.random_range(-120.0..150.0))),
                taken_at: format!("2024-{:02}-{:02}T{:02}:15:00Z", n % 12 + 1, n % 27 + 1, n % 24),
                tags: vec![("outdoor", 0.91), ("person", 0.77)][..n % 3].to_vec(),
                uploaded_at: format!("2024-{:02}-{:02}T18:00:00Z", n % 12 + 1, n % 27 + 2),
                visibility: ["private", "unlisted", "public"][n % 3],
                bytes,
            }
        })
        .collect()
}

/// The JSON of an upload's GPS position, as stored.
pub fn gps_json(upload: &Upload) -> Option<serde_json::Value> {
    upload
        .gps
        .map(|(lat, lon)| serde_json::json!({ "lat": lat, "lon": lon }))
}

/// The JSON of an upload's tags, as stored.
pub fn tags_json(upload: &Upload) -> serde_json::Value {
    serde_json::Value::Array(
        upload
            .tags
            .iter()
            .map(|(name, confidence)| serde_json::json!({ "name": name, "confidence": confidence }))
            .collect(),
    )
}

fn ascii(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'é' => 'e',
            'ú' => 'u',
            'ü' => 'u',
            'á' => 'a',
            'ë' => 'e',
            'í' => 'i',
            c if c.is_ascii_alphanumeric() => c,
            _ => 'x',
        })
        .collect()
}
