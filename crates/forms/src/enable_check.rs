//! Load-time checks of skip logic (`enableWhen`), shared by both importers.
//!
//! Every condition must name a question other than its own item, with an
//! answer that fits the question's type and an operator that fits the
//! answer. Conditions must not form cycles, where an item depends on itself
//! through other conditions or through the groups that contain it. Their
//! chains are bounded, which bounds the evaluator's recursion. Conditions
//! on an unknown linkId were reported by the importer and are skipped here.

use std::collections::{BTreeSet, HashMap};

use crate::enable::{self, Operand};
use crate::load::{FHIR_KEYS, LoadReport, NATIVE_KEYS, SourceKeys};
use crate::model::{EnableWhen, Form, Item, OptionValue};

/// Maximum number of `enableWhen` conditions on one item.
const MAX_CONDITIONS: usize = 64;

/// Maximum length of the longest chain of dependencies behind an item's
/// conditions, counting each condition and each enclosing group as one
/// step. The evaluator recurses a few calls deep per step. The deepest
/// chain of the lforms skip-logic test form is 2 steps.
const MAX_DEPENDENCY_DEPTH: usize = 64;

/// The items of a form in form order, and what each one depends on: its
/// enclosing group, and the question of each usable condition.
pub(crate) struct Graph<'f> {
    pub nodes: Vec<Node<'f>>,
    /// Dependencies of each node, the enclosing group first. A question
    /// named by several conditions of one item has one edge, from the
    /// first of them.
    pub edges: Vec<Vec<Edge>>,
    /// Node of each linkId. A linkId used twice keeps its first item, as
    /// the form's index does.
    positions: HashMap<&'f str, usize>,
}

/// An item of the form and its place in the tree.
pub(crate) struct Node<'f> {
    pub item: &'f Item,
    /// Node of the enclosing group, or `None` at the top level.
    pub parent: Option<usize>,
    /// Position of the item among its siblings.
    pub position: usize,
}

/// A dependency of an item on another: on its enclosing group, or on the
/// question of one of its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edge {
    pub target: usize,
    /// Position of the condition in the item's `enableWhen`, or `None` for
    /// the enclosing group.
    pub condition: Option<usize>,
}

/// The item that a condition's question names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A question item other than the condition's own, by node.
    Question(usize),
    /// No item; the importer reports the linkId.
    Unknown,
    /// The condition's own item.
    Itself,
    /// A display or group item, by node.
    NotQuestion(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    Open,
    Done,
}

/// Checks the skip logic of a loaded form and adds the errors, warnings and
/// the `supported` line to `report`. Does nothing when the form could not
/// be built.
pub(crate) fn check_form(form: Option<&Form>, report: &mut LoadReport) {
    let Some(form) = form else {
        return;
    };
    let graph = Graph::new(form);

    let mut conditional_items = 0;
    for (position, node) in graph.nodes.iter().enumerate() {
        let item = node.item;
        let keys = source_keys(item);
        check_behavior(item, keys, report);
        if item.enable_when.is_empty() {
            continue;
        }
        conditional_items += 1;

        let count = item.enable_when.len();
        if count > MAX_CONDITIONS {
            report.error(
                list_path(item, keys),
                format!(
                    "an item may have at most {MAX_CONDITIONS} {} conditions, this one has {count}",
                    keys.enable_when
                ),
            );
        }
        for condition in &item.enable_when {
            let path = condition.json_path.as_str();
            match graph.target(position, condition) {
                Target::Question(question) => check_answer(graph.nodes[question].item, condition, report),
                Target::Unknown => {}
                Target::Itself => report.error(path, format!("{} refers to the item itself", keys.enable_when)),
                Target::NotQuestion(other) => {
                    let other = graph.nodes[other].item;
                    report.error(
                        path,
                        format!(
                            "{} refers to \"{}\", a {} item; a condition must name a question",
                            keys.enable_when,
                            other.link_id,
                            other.item_type.code()
                        ),
                    );
                }
            }
        }
    }

    let (finished, cycles) = graph.search();
    report_cycles(&graph, &cycles, report);
    if cycles.is_empty() {
        check_depth(&graph, &finished, report);
    }
    if conditional_items > 0 {
        let noun = if conditional_items == 1 { "item" } else { "items" };
        report.supported.push(format!("enableWhen (evaluated on every submission): {conditional_items} {noun}"));
    }
}

impl<'f> Graph<'f> {
    /// Builds the graph of a form, without recursion so that deep nesting
    /// cannot exhaust the stack.
    pub(crate) fn new(form: &'f Form) -> Graph<'f> {
        let mut nodes = Vec::new();
        let mut stack: Vec<(&Item, Option<usize>, usize)> =
            form.items.iter().enumerate().rev().map(|(position, item)| (item, None, position)).collect();
        while let Some((item, parent, position)) = stack.pop() {
            let node = nodes.len();
            nodes.push(Node { item, parent, position });
            stack.extend(item.children.iter().enumerate().rev().map(|(position, child)| (child, Some(node), position)));
        }
        let mut positions = HashMap::new();
        for (node, entry) in nodes.iter().enumerate() {
            positions.entry(entry.item.link_id.as_str()).or_insert(node);
        }

        let mut graph = Graph { nodes, edges: Vec::new(), positions };
        graph.edges = (0..graph.nodes.len())
            .map(|node| {
                let mut edges: Vec<Edge> = graph.nodes[node]
                    .parent
                    .map(|parent| Edge { target: parent, condition: None })
                    .into_iter()
                    .collect();
                for (index, condition) in graph.nodes[node].item.enable_when.iter().enumerate() {
                    if let Target::Question(target) = graph.target(node, condition)
                        && edges.iter().all(|edge| edge.target != target)
                    {
                        edges.push(Edge { target, condition: Some(index) });
                    }
                }
                edges
            })
            .collect();
        graph
    }

    /// Returns what the question of `condition`, a condition of `node`,
    /// names.
    pub(crate) fn target(&self, node: usize, condition: &EnableWhen) -> Target {
        match self.positions.get(condition.question.as_str()) {
            None => Target::Unknown,
            Some(&target) if target == node => Target::Itself,
            Some(&target) if self.nodes[target].item.item_type.is_question() => Target::Question(target),
            Some(&target) => Target::NotQuestion(target),
        }
    }

    /// Returns the enclosing groups of `node`, outermost first.
    pub(crate) fn ancestors(&self, node: usize) -> Vec<usize> {
        let mut ancestors = Vec::new();
        let mut current = self.nodes[node].parent;
        while let Some(parent) = current {
            ancestors.push(parent);
            current = self.nodes[parent].parent;
        }
        ancestors.reverse();
        ancestors
    }

    /// Searches the graph depth first, without recursion. Returns the nodes
    /// in the order they were finished, which puts every node after the
    /// nodes it depends on when there is no cycle, and the cycles found,
    /// each as its nodes with the edge that leaves each one.
    pub(crate) fn search(&self) -> (Vec<usize>, Vec<Vec<(usize, Edge)>>) {
        let edges = &self.edges;
        let mut marks = vec![Mark::New; edges.len()];
        let mut finished = Vec::with_capacity(edges.len());
        let mut cycles = Vec::new();

        for start in 0..edges.len() {
            if marks[start] != Mark::New {
                continue;
            }
            marks[start] = Mark::Open;
            // Each entry is an open node and the number of its edges taken.
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            while let Some(top) = stack.last_mut() {
                let node = top.0;
                let Some(&edge) = edges[node].get(top.1) else {
                    marks[node] = Mark::Done;
                    finished.push(node);
                    stack.pop();
                    continue;
                };
                top.1 += 1;
                match marks[edge.target] {
                    Mark::New => {
                        marks[edge.target] = Mark::Open;
                        stack.push((edge.target, 0));
                    }
                    Mark::Open => {
                        let first = stack.iter().position(|(open, _)| *open == edge.target).unwrap_or(0);
                        let cycle =
                            stack[first..].iter().map(|(open, taken)| (*open, edges[*open][taken - 1])).collect();
                        cycles.push(cycle);
                    }
                    Mark::Done => {}
                }
            }
        }
        (finished, cycles)
    }

    /// Returns the strongly connected component of each node (Kosaraju's
    /// algorithm). Two nodes share a component exactly when each depends
    /// on the other, directly or not, so an edge inside a component is on
    /// a cycle.
    pub(crate) fn components(&self) -> Vec<usize> {
        let (finished, _) = self.search();
        let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (node, edges) in self.edges.iter().enumerate() {
            for edge in edges {
                reverse[edge.target].push(node);
            }
        }

        let mut components = vec![usize::MAX; self.nodes.len()];
        for (component, &start) in finished.iter().rev().enumerate() {
            if components[start] != usize::MAX {
                continue;
            }
            components[start] = component;
            let mut stack = vec![start];
            while let Some(node) = stack.pop() {
                for &source in &reverse[node] {
                    if components[source] == usize::MAX {
                        components[source] = component;
                        stack.push(source);
                    }
                }
            }
        }
        components
    }
}

/// Returns the key names of the item's source format. FHIR paths are
/// JSONPath and start with `$`, native paths start with `items`.
fn source_keys(item: &Item) -> &'static SourceKeys {
    if is_fhir_path(&item.source_path) { &FHIR_KEYS } else { &NATIVE_KEYS }
}

fn is_fhir_path(path: &str) -> bool {
    path.starts_with('$')
}

fn list_path(item: &Item, keys: &SourceKeys) -> String {
    format!("{}.{}", item.source_path, keys.enable_when)
}

fn check_behavior(item: &Item, keys: &SourceKeys, report: &mut LoadReport) {
    let count = item.enable_when.len();
    match item.enable_behavior {
        Some(_) if count == 0 => report.ignored(
            format!("{}.{}", item.source_path, keys.enable_behavior),
            format!("{} has no effect without {}", keys.enable_behavior, keys.enable_when),
        ),
        None if count > 1 => report.warning(
            list_path(item, keys),
            format!(
                "{count} {} conditions but no {}; they are combined as \"all\"",
                keys.enable_when, keys.enable_behavior
            ),
        ),
        _ => {}
    }
}

/// Reports a condition's answer that does not fit its question, and warns
/// about answers that were read leniently or can never be equal to an
/// answer.
fn check_answer(question: &Item, condition: &EnableWhen, report: &mut LoadReport) {
    let fhir = is_fhir_path(&condition.json_path);
    let answer_path = if fhir {
        format!("{}.{}", condition.json_path, condition.answer_kind)
    } else {
        format!("{}.answer", condition.json_path)
    };
    let read = match enable::read_answer(question, condition) {
        Ok(read) => read,
        Err(error) => {
            let path = if error.on_operator { format!("{}.operator", condition.json_path) } else { answer_path };
            report.error(path, error.message);
            return;
        }
    };

    // A native string answer is the documented way to write a date or a
    // time, so only a FHIR answer of the wrong type gets a warning.
    if let (Some(read_as), true) = (read.reread_as, fhir) {
        report.warning(
            &answer_path,
            format!(
                "{} has the value {}, read as {} because question \"{}\" is a {} item",
                condition.answer_kind,
                condition.answer,
                read_as.with_article(),
                question.link_id,
                question.item_type.code(),
            ),
        );
    }

    if let Operand::Coding { system, code } = &read.operand {
        let coding_options: Vec<(&Option<String>, &String)> = question
            .options
            .iter()
            .filter_map(|option| match &option.value {
                OptionValue::Coding { system, code, .. } => Some((system, code)),
                _ => None,
            })
            .collect();
        let listed = coding_options.iter().any(|(option_system, option_code)| {
            let same_system = match (system, option_system) {
                (Some(expected), Some(listed)) => expected == listed,
                _ => true,
            };
            *option_code == code && same_system
        });
        let closed_list = question.answer_value_set.is_none() && !coding_options.is_empty();
        if closed_list && !listed {
            report.warning(
                answer_path,
                format!(
                    "Coding \"{code}\" is not an option of question \"{}\", so no answer can equal it",
                    question.link_id
                ),
            );
        }
    }
}

/// Reports each cycle once, starting at its item that comes first in the
/// form, at the first of its conditions.
fn report_cycles(graph: &Graph<'_>, cycles: &[Vec<(usize, Edge)>], report: &mut LoadReport) {
    let nodes = &graph.nodes;
    let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
    for cycle in cycles {
        let first = cycle.iter().enumerate().min_by_key(|(_, (node, _))| *node).map_or(0, |(position, _)| position);
        let mut steps = cycle.clone();
        steps.rotate_left(first);
        if !reported.insert(steps.iter().map(|(node, _)| *node).collect()) {
            continue;
        }

        let link_id = |node: usize| &nodes[node].item.link_id;
        let described: Vec<String> = steps
            .iter()
            .map(|(node, edge)| match edge.condition {
                Some(_) => format!("\"{}\" depends on \"{}\"", link_id(*node), link_id(edge.target)),
                None => format!("\"{}\" is inside \"{}\"", link_id(*node), link_id(edge.target)),
            })
            .collect();
        let path = steps
            .iter()
            .find_map(|(node, edge)| {
                let condition = nodes[*node].item.enable_when.get(edge.condition?)?;
                Some(condition.json_path.clone())
            })
            .unwrap_or_else(|| nodes[steps[0].0].item.source_path.clone());
        report.error(path, format!("enableWhen conditions form a cycle: {}", described.join(", ")));
    }
}

/// Reports the conditional item with the longest dependency chain when that
/// chain is over [`MAX_DEPENDENCY_DEPTH`]. `finished` must list every node
/// after the nodes it depends on.
fn check_depth(graph: &Graph<'_>, finished: &[usize], report: &mut LoadReport) {
    let (nodes, edges) = (&graph.nodes, &graph.edges);
    let mut depths = vec![0usize; nodes.len()];
    for &node in finished {
        depths[node] = edges[node].iter().map(|edge| depths[edge.target] + 1).max().unwrap_or(0);
    }
    let deepest = (0..nodes.len())
        .filter(|node| !nodes[*node].item.enable_when.is_empty())
        .max_by_key(|node| (depths[*node], std::cmp::Reverse(*node)));
    if let Some(node) = deepest.filter(|node| depths[*node] > MAX_DEPENDENCY_DEPTH) {
        let item = nodes[node].item;
        report.error(
            list_path(item, source_keys(item)),
            format!(
                "the skip logic of this item depends on a chain of {} conditions and enclosing groups; the limit is {MAX_DEPENDENCY_DEPTH}",
                depths[node]
            ),
        );
    }
}
