//! The built-in objects a server holds (`dict`, `list`, `Namespace`), dynamically typed, and
//! their methods, called by name.

use std::collections::{BTreeMap, HashMap};

use rmpv::Value;

use crate::protocol::RemoteKind;

/// A method's failure: Python's exception class and message.
pub(crate) type Fail = (RemoteKind, String);

/// What a method returns.
pub(crate) type Outcome = Result<Value, Fail>;

fn fail<T>(kind: RemoteKind, message: impl Into<String>) -> Result<T, Fail> {
    Err((kind, message.into()))
}

/// One object on the server.
#[derive(Debug)]
pub(crate) enum Object {
    Dict(Dict),
    List(Vec<Value>),
    Namespace(BTreeMap<String, Value>),
}

impl Object {
    /// Makes an object of `typeid` from its constructor arguments.
    pub(crate) fn create(typeid: &str, args: Vec<Value>) -> Result<Object, Fail> {
        let mut args = args.into_iter();
        let first = args.next();
        match typeid {
            "dict" => {
                let mut dict = Dict::default();
                if let Some(items) = first {
                    dict.update(items)?;
                }
                Ok(Object::Dict(dict))
            }
            "list" => Ok(Object::List(match first {
                None => Vec::new(),
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return fail(RemoteKind::TypeError, format!("list({other}): not a list"))
                }
            })),
            "Namespace" => {
                let mut ns = BTreeMap::new();
                if let Some(Value::Map(pairs)) = first {
                    for (k, v) in pairs {
                        ns.insert(name(&k)?, v);
                    }
                }
                Ok(Object::Namespace(ns))
            }
            other => fail(RemoteKind::Other, format!("unknown type id {other:?}")),
        }
    }

    /// Calls `method` with `args`.
    pub(crate) fn call(&mut self, method: &str, args: Vec<Value>) -> Outcome {
        match self {
            Object::Dict(d) => d.call(method, args),
            Object::List(l) => list_call(l, method, args),
            Object::Namespace(ns) => namespace_call(ns, method, args),
        }
    }
}

/// The arguments of a call, taken in order.
struct Args {
    method: String,
    args: std::vec::IntoIter<Value>,
    given: usize,
}

impl Args {
    fn new(method: &str, args: Vec<Value>) -> Args {
        Args {
            method: method.to_owned(),
            given: args.len(),
            args: args.into_iter(),
        }
    }

    fn next(&mut self) -> Result<Value, Fail> {
        match self.args.next() {
            Some(v) => Ok(v),
            None => fail(
                RemoteKind::TypeError,
                format!(
                    "{}() takes more arguments than the {} given",
                    self.method, self.given
                ),
            ),
        }
    }

    fn optional(&mut self) -> Option<Value> {
        self.args.next()
    }

    fn index(&mut self) -> Result<i64, Fail> {
        match self.next()? {
            Value::Integer(i) => i
                .as_i64()
                .map_or_else(|| fail(RemoteKind::IndexError, "index out of range"), Ok),
            other => fail(
                RemoteKind::TypeError,
                format!("indices must be integers, not {other}"),
            ),
        }
    }
}

fn name(v: &Value) -> Result<String, Fail> {
    match v.as_str() {
        Some(s) => Ok(s.to_owned()),
        None => fail(
            RemoteKind::TypeError,
            format!("attribute name must be a string, not {v}"),
        ),
    }
}

fn no_method(kind: &str, method: &str) -> Outcome {
    fail(
        RemoteKind::AttributeError,
        format!("'{kind}' object has no exposed method {method:?}"),
    )
}

/// A dict whose keys compare by value (their MessagePack encoding) and which keeps insertion
/// order, as Python's does.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    /// In insertion order; `None` where a key was removed.
    entries: Vec<Option<(Value, Value)>>,
    /// Encoded key → index into `entries`.
    index: HashMap<Vec<u8>, usize>,
}

/// The identity of a key: its MessagePack encoding (integers in their shortest form).
fn key_of(k: &Value) -> Vec<u8> {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut buf, k);
    buf
}

fn repr(v: &Value) -> String {
    v.to_string()
}

impl Dict {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn get(&self, k: &Value) -> Option<&Value> {
        let i = *self.index.get(&key_of(k))?;
        self.entries[i].as_ref().map(|(_, v)| v)
    }

    fn set(&mut self, k: Value, v: Value) {
        let key = key_of(&k);
        match self.index.get(&key) {
            Some(&i) => self.entries[i] = Some((k, v)),
            None => {
                self.index.insert(key, self.entries.len());
                self.entries.push(Some((k, v)));
            }
        }
    }

    fn remove(&mut self, k: &Value) -> Option<Value> {
        let i = self.index.remove(&key_of(k))?;
        let (_, v) = self.entries[i].take()?;
        self.compact();
        Some(v)
    }

    /// Drops the holes once they are the majority (keeps operations amortized O(1)).
    fn compact(&mut self) {
        if self.entries.len() > 32 && self.index.len() * 2 < self.entries.len() {
            self.entries.retain(Option::is_some);
            for (i, (k, _)) in self.entries.iter().flatten().enumerate() {
                self.index.insert(key_of(k), i);
            }
        }
    }

    fn pairs(&self) -> impl Iterator<Item = &(Value, Value)> {
        self.entries.iter().flatten()
    }

    /// `dict.update(items)`: a map or a list of pairs.
    fn update(&mut self, items: Value) -> Result<(), Fail> {
        match items {
            Value::Map(pairs) => {
                for (k, v) in pairs {
                    self.set(k, v);
                }
                Ok(())
            }
            Value::Array(pairs) => {
                for pair in pairs {
                    match pair {
                        Value::Array(kv) if kv.len() == 2 => {
                            let mut kv = kv.into_iter();
                            if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                                self.set(k, v);
                            }
                        }
                        other => {
                            return fail(
                                RemoteKind::TypeError,
                                format!("update: {other} is not a (key, value) pair"),
                            )
                        }
                    }
                }
                Ok(())
            }
            Value::Nil => Ok(()),
            other => fail(
                RemoteKind::TypeError,
                format!("update: {other} is not a dict"),
            ),
        }
    }

    fn call(&mut self, method: &str, args: Vec<Value>) -> Outcome {
        let mut a = Args::new(method, args);
        match method {
            "__getitem__" => {
                let k = a.next()?;
                match self.get(&k) {
                    Some(v) => Ok(v.clone()),
                    None => fail(RemoteKind::KeyError, repr(&k)),
                }
            }
            "get" => {
                let k = a.next()?;
                Ok(self
                    .get(&k)
                    .cloned()
                    .or_else(|| a.optional())
                    .unwrap_or(Value::Nil))
            }
            "__setitem__" => {
                let (k, v) = (a.next()?, a.next()?);
                self.set(k, v);
                Ok(Value::Nil)
            }
            "__delitem__" => {
                let k = a.next()?;
                match self.remove(&k) {
                    Some(_) => Ok(Value::Nil),
                    None => fail(RemoteKind::KeyError, repr(&k)),
                }
            }
            "pop" => {
                let k = a.next()?;
                match (self.remove(&k), a.optional()) {
                    (Some(v), _) | (None, Some(v)) => Ok(v),
                    (None, None) => fail(RemoteKind::KeyError, repr(&k)),
                }
            }
            "popitem" => {
                let last = self.entries.iter().rposition(Option::is_some);
                match last.and_then(|i| self.entries[i].clone()) {
                    Some((k, v)) => {
                        self.remove(&k);
                        Ok(Value::Array(vec![k, v]))
                    }
                    None => fail(RemoteKind::KeyError, "popitem(): dictionary is empty"),
                }
            }
            "setdefault" => {
                let k = a.next()?;
                let default = a.optional().unwrap_or(Value::Nil);
                if let Some(v) = self.get(&k) {
                    return Ok(v.clone());
                }
                self.set(k, default.clone());
                Ok(default)
            }
            "__contains__" => Ok(Value::Boolean(self.get(&a.next()?).is_some())),
            "__len__" => Ok(Value::from(self.len() as u64)),
            "keys" => Ok(Value::Array(self.pairs().map(|(k, _)| k.clone()).collect())),
            "values" => Ok(Value::Array(self.pairs().map(|(_, v)| v.clone()).collect())),
            "items" | "copy" => Ok(Value::Array(
                self.pairs()
                    .map(|(k, v)| Value::Array(vec![k.clone(), v.clone()]))
                    .collect(),
            )),
            "update" => {
                self.update(a.next()?)?;
                Ok(Value::Nil)
            }
            "clear" => {
                self.entries.clear();
                self.index.clear();
                Ok(Value::Nil)
            }
            other => no_method("dict", other),
        }
    }
}

/// Python's index rule: `-1` is the last item; out of range is `None`.
fn resolve(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

/// Python's slice bounds: negative from the end, clamped to `0..=len`.
fn clamp(i: Option<i64>, len: usize, default: usize) -> usize {
    let Some(i) = i else { return default };
    let n = len as i64;
    let i = if i < 0 { (i + n).max(0) } else { i.min(n) };
    i as usize
}

fn opt_index(v: Option<Value>) -> Result<Option<i64>, Fail> {
    match v {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Integer(i)) => Ok(i.as_i64()),
        Some(other) => fail(
            RemoteKind::TypeError,
            format!("slice indices must be integers, not {other}"),
        ),
    }
}

fn list_call(l: &mut Vec<Value>, method: &str, args: Vec<Value>) -> Outcome {
    let mut a = Args::new(method, args);
    let out_of_range = || fail(RemoteKind::IndexError, "list index out of range");
    match method {
        "append" => {
            l.push(a.next()?);
            Ok(Value::Nil)
        }
        "extend" => match a.next()? {
            Value::Array(items) => {
                l.extend(items);
                Ok(Value::Nil)
            }
            other => fail(
                RemoteKind::TypeError,
                format!("extend: {other} is not a list"),
            ),
        },
        "__getitem__" => {
            let i = a.index()?;
            match resolve(i, l.len()) {
                Some(i) => Ok(l[i].clone()),
                None => out_of_range(),
            }
        }
        "__setitem__" => {
            let (i, v) = (a.index()?, a.next()?);
            match resolve(i, l.len()) {
                Some(i) => {
                    l[i] = v;
                    Ok(Value::Nil)
                }
                None => fail(RemoteKind::IndexError, "list assignment index out of range"),
            }
        }
        "__delitem__" => {
            let i = a.index()?;
            match resolve(i, l.len()) {
                Some(i) => {
                    l.remove(i);
                    Ok(Value::Nil)
                }
                None => fail(RemoteKind::IndexError, "list assignment index out of range"),
            }
        }
        "getslice" => {
            let (start, stop) = (opt_index(a.optional())?, opt_index(a.optional())?);
            let (start, stop) = (clamp(start, l.len(), 0), clamp(stop, l.len(), l.len()));
            Ok(Value::Array(if start < stop {
                l[start..stop].to_vec()
            } else {
                Vec::new()
            }))
        }
        "insert" => {
            let (i, v) = (a.index()?, a.next()?);
            let at = clamp(Some(i), l.len(), l.len());
            l.insert(at, v);
            Ok(Value::Nil)
        }
        "pop" => {
            let i = opt_index(a.optional())?.unwrap_or(-1);
            if l.is_empty() {
                return fail(RemoteKind::IndexError, "pop from empty list");
            }
            match resolve(i, l.len()) {
                Some(i) => Ok(l.remove(i)),
                None => fail(RemoteKind::IndexError, "pop index out of range"),
            }
        }
        "remove" => {
            let v = a.next()?;
            match l.iter().position(|x| *x == v) {
                Some(i) => {
                    l.remove(i);
                    Ok(Value::Nil)
                }
                None => fail(
                    RemoteKind::ValueError,
                    format!("list.remove(x): {} not in list", repr(&v)),
                ),
            }
        }
        "index" => {
            let v = a.next()?;
            match l.iter().position(|x| *x == v) {
                Some(i) => Ok(Value::from(i as u64)),
                None => fail(
                    RemoteKind::ValueError,
                    format!("{} is not in list", repr(&v)),
                ),
            }
        }
        "count" => {
            let v = a.next()?;
            Ok(Value::from(l.iter().filter(|x| **x == v).count() as u64))
        }
        "__len__" => Ok(Value::from(l.len() as u64)),
        "__contains__" => {
            let v = a.next()?;
            Ok(Value::Boolean(l.contains(&v)))
        }
        "reverse" => {
            l.reverse();
            Ok(Value::Nil)
        }
        "copy" => Ok(Value::Array(l.clone())),
        "clear" => {
            l.clear();
            Ok(Value::Nil)
        }
        other => no_method("list", other),
    }
}

fn namespace_call(ns: &mut BTreeMap<String, Value>, method: &str, args: Vec<Value>) -> Outcome {
    let mut a = Args::new(method, args);
    match method {
        "__getattribute__" => {
            let n = name(&a.next()?)?;
            match ns.get(&n) {
                Some(v) => Ok(v.clone()),
                None => fail(
                    RemoteKind::AttributeError,
                    format!("'Namespace' object has no attribute {n:?}"),
                ),
            }
        }
        "__setattr__" => {
            let (n, v) = (name(&a.next()?)?, a.next()?);
            ns.insert(n, v);
            Ok(Value::Nil)
        }
        "__delattr__" => {
            let n = name(&a.next()?)?;
            match ns.remove(&n) {
                Some(_) => Ok(Value::Nil),
                None => fail(RemoteKind::AttributeError, n),
            }
        }
        "__dir__" => Ok(Value::Array(
            ns.keys().map(|k| Value::from(k.as_str())).collect(),
        )),
        other => no_method("Namespace", other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(o: &mut Object, m: &str, args: Vec<Value>) -> Outcome {
        o.call(m, args)
    }

    #[test]
    fn dict_keeps_insertion_order_and_compares_keys_by_value() {
        let mut d = Object::create("dict", vec![]).unwrap();
        for (k, v) in [(3, "c"), (1, "a"), (2, "b")] {
            call(&mut d, "__setitem__", vec![Value::from(k), Value::from(v)]).unwrap();
        }
        // 1u8 and 1i64 are the same key.
        call(
            &mut d,
            "__setitem__",
            vec![Value::from(1i64), Value::from("A")],
        )
        .unwrap();
        let keys = call(&mut d, "keys", vec![]).unwrap();
        assert_eq!(keys, Value::Array(vec![3.into(), 1.into(), 2.into()]));
        assert_eq!(
            call(&mut d, "__getitem__", vec![1u8.into()]).unwrap(),
            Value::from("A")
        );
        let err = call(&mut d, "__getitem__", vec![9.into()]).unwrap_err();
        assert_eq!(err.0, RemoteKind::KeyError);
        assert_eq!(
            call(&mut d, "popitem", vec![]).unwrap(),
            Value::Array(vec![2.into(), "b".into()])
        );
        for i in 0..100 {
            call(
                &mut d,
                "__setitem__",
                vec![Value::from(100 + i), Value::Nil],
            )
            .unwrap();
            call(&mut d, "__delitem__", vec![Value::from(100 + i)]).unwrap();
        }
        assert_eq!(call(&mut d, "__len__", vec![]).unwrap(), Value::from(2));
        assert_eq!(
            call(&mut d, "keys", vec![]).unwrap(),
            Value::Array(vec![3.into(), 1.into()])
        );
    }

    #[test]
    fn list_follows_pythons_index_rules() {
        let mut l = Object::create(
            "list",
            vec![Value::Array((0..5).map(Value::from).collect())],
        )
        .unwrap();
        assert_eq!(
            call(&mut l, "__getitem__", vec![(-1).into()]).unwrap(),
            Value::from(4)
        );
        assert_eq!(
            call(&mut l, "__getitem__", vec![5.into()]).unwrap_err().0,
            RemoteKind::IndexError
        );
        assert_eq!(
            call(&mut l, "getslice", vec![1.into(), (-1).into()]).unwrap(),
            Value::Array(vec![1.into(), 2.into(), 3.into()])
        );
        call(&mut l, "insert", vec![(-100).into(), "x".into()]).unwrap();
        assert_eq!(
            call(&mut l, "index", vec!["x".into()]).unwrap(),
            Value::from(0)
        );
        assert_eq!(
            call(&mut l, "remove", vec!["y".into()]).unwrap_err().0,
            RemoteKind::ValueError
        );
        assert_eq!(call(&mut l, "pop", vec![]).unwrap(), Value::from(4));
        assert_eq!(
            call(&mut l, "nope", vec![]).unwrap_err().0,
            RemoteKind::AttributeError
        );
    }
}
