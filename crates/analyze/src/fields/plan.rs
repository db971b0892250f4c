//! The compiled field table: the paths of every field in a trie of
//! lower-cased keys, and per field its slots in priority order.

use super::field::{default_paths, Field, DEFAULT_TENANT_PATHS, FIELDS, N_FIELDS};
use super::slots::MAX_SLOTS;

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) key: Box<str>,
    pub(super) slot: Option<u16>,
    pub(super) child: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    pub(super) entries: Vec<Entry>,
}

impl Node {
    pub(super) fn find(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.key.eq_ignore_ascii_case(key))
    }
}

/// The compiled field table: a trie of paths plus, per field, its slots in
/// priority order. Slots `0..N_FIELDS` are the fields' explicit overrides
/// (`--csv-map`), which win over every default path.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(super) nodes: Vec<Node>,
    pub(super) by_field: Vec<Vec<u16>>,
    pub(super) n_slots: usize,
    /// The tenant paths in use (for the report).
    pub tenant_paths: Vec<String>,
    /// The explicit mappings in use: source column or path → field.
    pub field_map: Vec<(String, Field)>,
}

impl Plan {
    /// Builds the plan: `tenant_paths` replace the default tenant paths when
    /// not empty; `field_map` maps CSV columns (or JSON paths) to fields,
    /// ahead of every default.
    pub fn new(tenant_paths: &[String], field_map: &[(String, Field)]) -> Result<Plan, String> {
        let mut plan = Plan {
            nodes: vec![Node::default()],
            by_field: vec![Vec::new(); N_FIELDS],
            n_slots: N_FIELDS,
            tenant_paths: Vec::new(),
            field_map: field_map.to_vec(),
        };
        for (source, field) in field_map {
            plan.add_path(source, Some(field.index() as u16))?;
            plan.by_field[field.index()].push(field.index() as u16);
        }
        let tenants: Vec<String> = if tenant_paths.is_empty() {
            DEFAULT_TENANT_PATHS.iter().map(|s| s.to_string()).collect()
        } else {
            tenant_paths.to_vec()
        };
        for f in FIELDS {
            let paths: Vec<String> = match f {
                Field::Tenant => tenants.clone(),
                _ => default_paths(f).iter().map(|s| s.to_string()).collect(),
            };
            for p in paths {
                let slot = plan.n_slots;
                if slot >= MAX_SLOTS {
                    return Err(format!("too many field paths (at most {})", MAX_SLOTS - N_FIELDS));
                }
                let used = plan.add_path(&p, Some(slot as u16))?;
                if used == slot as u16 {
                    plan.n_slots += 1;
                }
                // A path the explicit mapping gave to another field stays that field's.
                if usize::from(used) < N_FIELDS && usize::from(used) != f.index() {
                    continue;
                }
                if !plan.by_field[f.index()].contains(&used) {
                    plan.by_field[f.index()].push(used);
                }
            }
        }
        plan.tenant_paths = tenants;
        Ok(plan)
    }

    /// Adds `path`; returns the slot it ends in (an existing one if the path
    /// was already there).
    fn add_path(&mut self, path: &str, slot: Option<u16>) -> Result<u16, String> {
        let parts: Vec<&str> = path.split('.').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("invalid field path {path:?}"));
        }
        let mut node = 0;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let idx = match self.nodes[node].find(part) {
                Some(idx) => idx,
                None => {
                    self.nodes[node].entries.push(Entry {
                        key: part.to_ascii_lowercase().into(),
                        slot: None,
                        child: None,
                    });
                    self.nodes[node].entries.len() - 1
                }
            };
            if last {
                let e = &mut self.nodes[node].entries[idx];
                match (e.slot, slot) {
                    (Some(existing), _) => return Ok(existing),
                    (None, Some(s)) => {
                        e.slot = Some(s);
                        return Ok(s);
                    }
                    (None, None) => return Err(format!("invalid field path {path:?}")),
                }
            }
            let child = match self.nodes[node].entries[idx].child {
                Some(c) => c,
                None => {
                    self.nodes.push(Node::default());
                    let c = self.nodes.len() - 1;
                    self.nodes[node].entries[idx].child = Some(c);
                    c
                }
            };
            node = child;
        }
        Err(format!("invalid field path {path:?}"))
    }

    /// The entry for a CSV column name: (slot, child node). A dotted name
    /// (`usage.prompt_tokens`, as flattening tools write nested fields)
    /// walks the paths.
    pub fn column(&self, name: &str) -> Option<(Option<u16>, Option<usize>)> {
        let name = name.trim();
        let mut node = 0;
        let parts: Vec<&str> = if self.nodes[0].find(name).is_some() { vec![name] } else { name.split('.').collect() };
        for (k, part) in parts.iter().enumerate() {
            let n = self.nodes.get(node)?;
            let e = &n.entries[n.find(part.trim())?];
            if k + 1 == parts.len() {
                return Some((e.slot, e.child));
            }
            node = e.child?;
        }
        None
    }
}
