//! Request limits that async-graphql does not enforce itself: the number of aliases in a query
//! (each alias of `subject` is a whole resolution, so a thousand of them is a denial of service).

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Aliased fields in `document`, counting a fragment once per spread (what execution would do).
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    let mut on_path = HashSet::new();
    document
        .operations
        .iter()
        .map(|(_, operation)| in_selection_set(document, &operation.node.selection_set.node, &mut on_path))
        .sum()
}

fn in_selection_set<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    on_path: &mut HashSet<&'a str>,
) -> usize {
    let mut count = 0usize;
    for item in &set.items {
        count = count.saturating_add(match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + in_selection_set(document, &field.node.selection_set.node, on_path)
            }
            Selection::InlineFragment(fragment) => {
                in_selection_set(document, &fragment.node.selection_set.node, on_path)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get(name) {
                    // A cycle is refused by validation later; here it just stops counting.
                    Some(fragment) if on_path.insert(name) => {
                        let inner = in_selection_set(document, &fragment.node.selection_set.node, on_path);
                        on_path.remove(name);
                        inner
                    }
                    _ => 0,
                }
            }
        });
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_counted_through_fragments() {
        let document = async_graphql::parser::parse_query(
            "query { a: connectors { n: name } ...F ...F } fragment F on Query { b: connectors { name } }",
        )
        .expect("parses");
        assert_eq!(count_aliases(&document), 4);
        let cyclic = async_graphql::parser::parse_query(
            "query { ...A } fragment A on Query { x: connectors { name } ...B } fragment B on Query { ...A }",
        )
        .expect("parses");
        assert_eq!(count_aliases(&cyclic), 1);
    }
}
