//! Request limits checked on the parsed document before async-graphql validates or runs it.
//!
//! async-graphql's own depth and complexity limits are checked only after its validation has
//! walked the document, and that walk expands fragment spreads: 26 fragments that each spread the
//! next twice describe 2^26 fields in 1 KB and keep a core busy for most of a minute. Here the
//! cost of every fragment is computed once (memoized by name), so the walk is linear in the size
//! of the text however the fragments multiply, and a query over the limits is refused before any
//! other work. Fields, aliases, depth and directives are all counted as execution would see them,
//! with every spread expanded.

use std::collections::HashMap;
use subject_connectors::codes::ErrorCode;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// What a query costs with its fragment spreads expanded. Counts saturate rather than wrap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCost {
    /// Fields selected in all (each field counts 1, and so does each fragment spread).
    pub fields: u64,
    /// Deepest nesting of fields.
    pub depth: u64,
    /// Aliased fields.
    pub aliases: u64,
    /// Directives on fields, spreads and inline fragments.
    pub directives: u64,
    /// Whether a fragment spreads itself, directly or through others.
    pub fragment_cycle: bool,
}

impl QueryCost {
    fn add(&mut self, other: QueryCost) {
        self.fields = self.fields.saturating_add(other.fields);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.directives = self.directives.saturating_add(other.directives);
        self.depth = self.depth.max(other.depth);
        self.fragment_cycle |= other.fragment_cycle;
    }
}

/// The limits a query must stay within.
#[derive(Debug, Clone, Copy)]
pub struct CostLimits {
    pub max_fields: usize,
    pub max_depth: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
}

/// Why a query was refused before it ran. Each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    #[error(
        "the query is too complex: it selects {fields} fields with its fragments expanded; at most {max} are allowed"
    )]
    TooComplex { fields: u64, max: usize },
    #[error(
        "the query is nested too deep: {depth} levels with its fragments expanded; at most {max} are allowed"
    )]
    TooDeep { depth: u64, max: usize },
    #[error("the query has {aliases} aliases; at most {max} are allowed")]
    TooManyAliases { aliases: u64, max: usize },
    #[error("the query has {directives} directives with its fragments expanded; at most {max} are allowed")]
    TooManyDirectives { directives: u64, max: usize },
    #[error("a fragment spreads itself, directly or through other fragments")]
    FragmentCycle,
}

impl CostError {
    /// The stable `extensions.code` of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            CostError::TooComplex { .. } => ErrorCode::QueryTooComplex.as_str(),
            CostError::TooDeep { .. } => ErrorCode::QueryTooDeep.as_str(),
            CostError::TooManyAliases { .. } => ErrorCode::TooManyAliases.as_str(),
            CostError::TooManyDirectives { .. } => ErrorCode::TooManyDirectives.as_str(),
            CostError::FragmentCycle => ErrorCode::FragmentCycle.as_str(),
        }
    }
}

impl CostLimits {
    /// Refuses `cost` when it is over any limit (the first one found, in a fixed order).
    pub fn check(&self, cost: QueryCost) -> Result<(), CostError> {
        if cost.fragment_cycle {
            return Err(CostError::FragmentCycle);
        }
        let over = |value: u64, max: usize| value > u64::try_from(max).unwrap_or(u64::MAX);
        if over(cost.aliases, self.max_aliases) {
            return Err(CostError::TooManyAliases {
                aliases: cost.aliases,
                max: self.max_aliases,
            });
        }
        if over(cost.depth, self.max_depth) {
            return Err(CostError::TooDeep {
                depth: cost.depth,
                max: self.max_depth,
            });
        }
        if over(cost.fields, self.max_fields) {
            return Err(CostError::TooComplex {
                fields: cost.fields,
                max: self.max_fields,
            });
        }
        if over(cost.directives, self.max_directives) {
            return Err(CostError::TooManyDirectives {
                directives: cost.directives,
                max: self.max_directives,
            });
        }
        Ok(())
    }
}

/// The cost of every operation of `document`, plus that of fragments no operation spreads
/// (validation looks at them too), with every fragment's cost computed once.
pub fn measure(document: &ExecutableDocument) -> QueryCost {
    let mut walk = Walk {
        document,
        memo: HashMap::new(),
    };
    let mut total = QueryCost::default();
    for (_, operation) in document.operations.iter() {
        let mut cost = walk.selection_set(&operation.node.selection_set.node);
        cost.directives = cost
            .directives
            .saturating_add(operation.node.directives.len() as u64);
        total.add(cost);
    }
    for (name, fragment) in &document.fragments {
        if !walk.memo.contains_key(name.as_str()) {
            let cost = walk.fragment(name.as_str());
            let _ = fragment;
            total.add(cost);
        }
    }
    total
}

/// How many directives the query text can at most hold: its `@` signs outside strings and
/// comments. Checked before parsing, so that a megabyte of directives is refused without the
/// parser building a node for each.
pub fn directives_upper_bound(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut count, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'@' => count += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    count
}

/// How many subjects the operation(s) of `document` ask for at the root: one per `subject` field,
/// one per identity of each `subjects` field (a literal list, or a list variable), every
/// fragment spread expanded. Run after the cost check, so the walk is bounded by the field limit.
/// Identities the text does not show (a missing variable) count nothing here; the resolvers'
/// budget still holds them. A `subjects` field over `max_batch` counts nothing either: it is
/// refused on its own (`BATCH_TOO_LARGE`) and resolves no one.
pub fn count_subjects(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &async_graphql::Variables,
    max_batch: usize,
) -> u64 {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let operations: Vec<_> = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => vec![operation],
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name).into_iter().collect(),
        (DocumentOperations::Multiple(operations), None) => operations.values().collect(),
    };
    operations
        .into_iter()
        .filter(|operation| operation.node.ty == OperationType::Query)
        .map(|operation| {
            root_subjects(
                document,
                &operation.node.selection_set.node,
                variables,
                max_batch,
                0,
            )
        })
        .fold(0u64, u64::saturating_add)
}

fn root_subjects(
    document: &ExecutableDocument,
    set: &SelectionSet,
    variables: &async_graphql::Variables,
    max_batch: usize,
    nesting: usize,
) -> u64 {
    // Fragments spread in a cycle are refused by validation; here they just stop counting.
    if nesting > 64 {
        return 0;
    }
    let mut count = 0u64;
    for item in &set.items {
        let more = match &item.node {
            Selection::Field(field) => match field.node.name.node.as_str() {
                "subject" => 1,
                "subjects" => {
                    let given = match field.node.get_argument("identities").map(|v| &v.node) {
                        Some(async_graphql_value::Value::List(items)) => items.len(),
                        Some(async_graphql_value::Value::Variable(name)) => match variables.get(name) {
                            Some(async_graphql::Value::List(items)) => items.len(),
                            _ => 0,
                        },
                        _ => 0,
                    };
                    if given > max_batch { 0 } else { given as u64 }
                }
                _ => 0,
            },
            Selection::InlineFragment(fragment) => root_subjects(
                document,
                &fragment.node.selection_set.node,
                variables,
                max_batch,
                nesting + 1,
            ),
            Selection::FragmentSpread(spread) => {
                match document.fragments.get(&spread.node.fragment_name.node) {
                    Some(fragment) => root_subjects(
                        document,
                        &fragment.node.selection_set.node,
                        variables,
                        max_batch,
                        nesting + 1,
                    ),
                    None => 0,
                }
            }
        };
        count = count.saturating_add(more);
    }
    count
}

/// Aliased fields in `document`, counting a fragment once per spread (what execution would do).
pub fn count_aliases(document: &ExecutableDocument) -> u64 {
    measure(document).aliases
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    /// Fragment costs by name; `None` while a fragment is being measured (a cycle, which
    /// validation refuses later, counts nothing here).
    memo: HashMap<&'a str, Option<QueryCost>>,
}

impl<'a> Walk<'a> {
    fn fragment(&mut self, name: &'a str) -> QueryCost {
        match self.memo.get(name) {
            Some(Some(cost)) => return *cost,
            Some(None) => {
                return QueryCost {
                    fragment_cycle: true,
                    ..QueryCost::default()
                };
            }
            None => {}
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return QueryCost::default();
        };
        self.memo.insert(name, None);
        let mut cost = self.selection_set(&fragment.node.selection_set.node);
        cost.directives = cost
            .directives
            .saturating_add(fragment.node.directives.len() as u64);
        self.memo.insert(name, Some(cost));
        cost
    }

    fn selection_set(&mut self, set: &'a SelectionSet) -> QueryCost {
        let mut cost = QueryCost::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let inner = self.selection_set(&field.node.selection_set.node);
                    cost.add(QueryCost {
                        fields: inner.fields.saturating_add(1),
                        depth: inner.depth.saturating_add(1),
                        aliases: inner
                            .aliases
                            .saturating_add(u64::from(field.node.alias.is_some())),
                        directives: inner
                            .directives
                            .saturating_add(field.node.directives.len() as u64),
                        fragment_cycle: inner.fragment_cycle,
                    });
                }
                Selection::InlineFragment(fragment) => {
                    let mut inner = self.selection_set(&fragment.node.selection_set.node);
                    inner.directives = inner
                        .directives
                        .saturating_add(fragment.node.directives.len() as u64);
                    cost.add(inner);
                }
                Selection::FragmentSpread(spread) => {
                    let mut inner = self.fragment(spread.node.fragment_name.node.as_str());
                    // The spread itself counts as a field: validation visits it however little
                    // it holds (fragments spreading each other in a cycle hold no field at all).
                    inner.fields = inner.fields.saturating_add(1);
                    inner.directives = inner
                        .directives
                        .saturating_add(spread.node.directives.len() as u64);
                    cost.add(inner);
                }
            }
        }
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(query: &str) -> QueryCost {
        measure(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn aliases_are_counted_through_fragments() {
        assert_eq!(
            cost(
                "query { a: connectors { n: name } ...F ...F } fragment F on Query { b: connectors { name } }"
            )
            .aliases,
            4
        );
        let cyclic = cost(
            "query { ...A } fragment A on Query { x: connectors { name } ...B } fragment B on Query { ...A }",
        );
        assert_eq!(cyclic.aliases, 1);
        assert!(cyclic.fragment_cycle);
    }

    #[test]
    fn doubling_fragments_are_measured_cheaply_and_in_full() {
        let mut query = String::from("query { ...F0 }");
        for i in 0..26 {
            query.push_str(&format!(
                " fragment F{i} on Query {{ ...F{next} ...F{next} }}",
                next = i + 1
            ));
        }
        query.push_str(" fragment F26 on Query { connectors { name } }");
        let started = std::time::Instant::now();
        let measured = cost(&query);
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        // 2^27 fields, and 2^27 - 1 spreads on the way.
        assert_eq!(measured.fields, 2 * (1 << 26) + (1 << 27) - 1);
        assert_eq!(measured.depth, 2);
    }

    #[test]
    fn directives_are_counted_outside_strings_and_comments() {
        assert_eq!(
            directives_upper_bound("{ a @skip(if: true) b @include(if: $x) }"),
            2
        );
        assert_eq!(
            directives_upper_bound("{ s(v: \"x@y.org\") # @not\n t(v: \"\"\"@no \\\"\"\" @no\"\"\") @yes }"),
            1
        );
        assert_eq!(directives_upper_bound("{ s(v: \"unterminated @x"), 0);
    }

    #[test]
    fn fragments_spreading_each_other_in_a_doubling_cycle_are_measured() {
        let mut query = String::from("query { ...F0 }");
        for i in 0..26 {
            query.push_str(&format!(
                " fragment F{i} on Query {{ ...F{next} ...F{next} }}",
                next = i + 1
            ));
        }
        query.push_str(" fragment F26 on Query { ...F0 }");
        assert!(cost(&query).fields > 1 << 26);
    }

    #[test]
    fn depth_and_directives_count_expanded() {
        let measured = cost(
            "{ a { b { c } } ...F @include(if: true) } fragment F on Query { x @skip(if: false) { y } }",
        );
        assert_eq!(measured.depth, 3);
        assert_eq!(measured.fields, 6);
        assert_eq!(measured.directives, 2);
    }
}
