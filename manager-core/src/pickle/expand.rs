//! The expansion of the decoder's arena into an [`Object`] tree: shared nodes are copied,
//! within the depth and size limits, and cycles are refused. It does not recurse, so decoding
//! needs no more stack for a deep pickle than for a flat one.

use super::decode::{Id, Node};
use super::{DecodeError, Object};

/// The tree of node `root`: at most `max_depth` deep, and at most `budget` nodes plus payload
/// bytes in all.
pub(super) fn expand(
    nodes: &[Node],
    root: Id,
    budget: usize,
    max_depth: usize,
) -> Result<Object, DecodeError> {
    let mut expander = Expander {
        nodes,
        on_path: vec![false; nodes.len()],
        budget,
        max_depth,
    };
    expander.expand(root)
}

/// Expands arena nodes into an [`Object`] tree, without recursion: an explicit stack of
/// tasks visits the nodes depth first, and each container is assembled from the values of
/// its children once they are all done.
struct Expander<'a> {
    nodes: &'a [Node],
    /// Nodes being expanded, from the root down to the current one: meeting one again is a
    /// cycle.
    on_path: Vec<bool>,
    /// What is left of the size budget: one per node plus payload bytes.
    budget: usize,
    max_depth: usize,
}

/// A step of the expansion.
enum Task {
    /// Expand this node, `depth` levels down (the root is at 1).
    Enter(Id, usize),
    /// All children of this node are on the value stack: assemble it.
    Exit(Id),
}

impl Expander<'_> {
    /// The tree of node `root`.
    fn expand(&mut self, root: Id) -> Result<Object, DecodeError> {
        let nodes = self.nodes;
        let mut tasks = vec![Task::Enter(root, 1)];
        // The finished values, children in order, waiting for their parent's `Exit`.
        let mut values: Vec<Object> = Vec::new();
        while let Some(task) = tasks.pop() {
            match task {
                Task::Enter(id, depth) => {
                    if self.on_path[id] {
                        return Err(DecodeError::Recursive);
                    }
                    if depth > self.max_depth {
                        return Err(DecodeError::TooDeep);
                    }
                    self.charge(1)?;
                    if let Node::Leaf(object) = &nodes[id] {
                        self.charge(payload_len(object))?;
                        values.push(object.clone());
                        continue;
                    }
                    self.on_path[id] = true;
                    tasks.push(Task::Exit(id));
                    // Pushed first to last, then reversed: popped (expanded) first to last.
                    let first = tasks.len();
                    children(&nodes[id], |child| {
                        tasks.push(Task::Enter(child, depth + 1))
                    });
                    tasks[first..].reverse();
                }
                Task::Exit(id) => {
                    self.on_path[id] = false;
                    let object = assemble(&nodes[id], &mut values);
                    values.push(object);
                }
            }
        }
        // The root's task ran last and left exactly one value.
        values.pop().ok_or(DecodeError::Truncated)
    }

    fn charge(&mut self, cost: usize) -> Result<(), DecodeError> {
        self.budget = self.budget.checked_sub(cost).ok_or(DecodeError::TooLarge)?;
        Ok(())
    }
}

/// Calls `visit` with each child of `node`, in the order [`assemble`] takes them.
fn children(node: &Node, mut visit: impl FnMut(Id)) {
    let pairs = |pairs: &[(Id, Id)], visit: &mut dyn FnMut(Id)| {
        for &(key, value) in pairs {
            visit(key);
            visit(value);
        }
    };
    match node {
        Node::Leaf(_) => {}
        Node::Tuple(items) | Node::List(items) | Node::Set(items) | Node::FrozenSet(items) => {
            items.iter().for_each(|&item| visit(item));
        }
        Node::Dict(items) => pairs(items, &mut visit),
        &Node::Reduce(a, b) | &Node::NewObj(a, b) | &Node::Build(a, b) => {
            visit(a);
            visit(b);
        }
        &Node::NewObjEx(a, b, c) => {
            visit(a);
            visit(b);
            visit(c);
        }
        Node::Appends(object, items) => {
            visit(*object);
            items.iter().for_each(|&item| visit(item));
        }
        Node::SetItems(object, items) => {
            visit(*object);
            pairs(items, &mut visit);
        }
    }
}

/// Builds the object of a container `node` from the values of its children, which are the
/// last values on `values` (as many as [`children`] visits).
fn assemble(node: &Node, values: &mut Vec<Object>) -> Object {
    let count = match node {
        Node::Leaf(_) => 0,
        Node::Tuple(items) | Node::List(items) | Node::Set(items) | Node::FrozenSet(items) => {
            items.len()
        }
        Node::Dict(items) => 2 * items.len(),
        Node::Reduce(..) | Node::NewObj(..) | Node::Build(..) => 2,
        Node::NewObjEx(..) => 3,
        Node::Appends(_, items) => 1 + items.len(),
        Node::SetItems(_, items) => 1 + 2 * items.len(),
    };
    let mut parts = values
        .split_off(values.len().saturating_sub(count))
        .into_iter();
    let mut next = || Box::new(parts.next().unwrap_or(Object::None));
    match node {
        Node::Leaf(object) => object.clone(),
        Node::Tuple(_) => Object::Tuple(parts.collect()),
        Node::List(_) => Object::List(parts.collect()),
        Node::Set(_) => Object::Set(parts.collect()),
        Node::FrozenSet(_) => Object::FrozenSet(parts.collect()),
        Node::Dict(_) => Object::Dict(pair_up(parts)),
        Node::Reduce(..) => Object::Reduce {
            callable: next(),
            args: next(),
        },
        Node::NewObj(..) => Object::NewObj {
            class: next(),
            args: next(),
        },
        Node::NewObjEx(..) => Object::NewObjEx {
            class: next(),
            args: next(),
            kwargs: next(),
        },
        Node::Build(..) => Object::Build {
            object: next(),
            state: next(),
        },
        Node::Appends(..) => {
            let object = next();
            Object::Appends {
                object,
                items: parts.collect(),
            }
        }
        Node::SetItems(..) => {
            let object = next();
            Object::SetItems {
                object,
                items: pair_up(parts),
            }
        }
    }
}

/// Keys and values alternating, paired.
fn pair_up(mut parts: impl Iterator<Item = Object>) -> Vec<(Object, Object)> {
    let mut pairs = Vec::new();
    while let (Some(key), Some(value)) = (parts.next(), parts.next()) {
        pairs.push((key, value));
    }
    pairs
}

/// The bytes a leaf holds besides its node.
fn payload_len(object: &Object) -> usize {
    match object {
        Object::BigInt(bytes) | Object::StrBytes(bytes) => bytes.len(),
        Object::Str(text) => text.len(),
        Object::Bytes(bytes) | Object::ByteArray(bytes) => bytes.len(),
        Object::Global { module, name } => module.len() + name.len(),
        _ => 0,
    }
}
