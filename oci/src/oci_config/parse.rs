//! Reading `config.json` so that what the hooks read is what the runtime will read.
//!
//! runc (and every Go engine) decodes the config with Go's `encoding/json`, which matches an
//! object key to a struct field ignoring case when no key matches exactly (Unicode simple
//! folding: besides ASCII letters, the Kelvin sign U+212A folds to `k` and the long s U+017F to
//! `s`), lets the last of several matching keys win (and merges nested objects), and matches map
//! keys (annotations, sysctl) exactly. A reader of exact keys would see another config: with
//! `"devices": [allow all], "DEVICES": [deny all]` runc enforces deny-all while the exact
//! reader sees allow-all.
//!
//! Rather than reproduce Go's matching, merging and its versions' details in a second decoder,
//! this reader refuses such configs: in the OCI objects the hooks and the wrapper read or write,
//! a key that Go would match to a field must be the field's exact name, and no object anywhere
//! may hold a key twice. Engines never write either (Go's encoder writes each field once, under
//! its exact name), so only hand-made or hostile configs are refused; for every config that is
//! accepted, exact keys mean what Go reads. Duplicates are refused everywhere, not only in the
//! fields that are read, because the wrapper rewrites the whole config: a duplicate it collapsed
//! would change what the runtime reads in fields it never looked at.
//!
//! The result is the same `serde_json::Value` a plain parse gives, built in the same single pass.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why config bytes were refused: serde_json's syntax errors, or the key rules above.
pub type ParseError = serde_json::Error;

/// Parses OCI config bytes into a JSON value, refusing keys Go's decoder would read differently
/// (see the module documentation). Errors carry the line and column.
pub fn parse(bytes: &[u8]) -> Result<Value, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Reader {
        shape: &CONFIG,
        place: KeyPath::ROOT,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// What a position of the config holds, as far as key matching goes.
#[derive(Debug)]
enum Shape {
    /// Anything the hooks neither read nor write: only duplicate keys are refused inside.
    Any,
    /// A Go struct: keys are matched to these fields ignoring case.
    Struct(&'static [Field]),
    /// An array of this shape.
    List(&'static Shape),
    /// A Go map: keys are data, matched exactly; values of this shape.
    Map(&'static Shape),
}

/// A field of a Go struct: its JSON name and its shape.
#[derive(Debug)]
struct Field(&'static str, Shape);

use Shape::{Any, List, Map as GoMap, Struct};

/// The runtime spec's objects that the hooks, the wrapper and `cdi::edits` read or write, with
/// every field of each (OCI runtime spec 1.2 and the 1.3 additions).
static CONFIG: Shape = Struct(&[
    Field("ociVersion", Any),
    Field("process", PROCESS),
    Field(
        "root",
        Struct(&[Field("path", Any), Field("readonly", Any)]),
    ),
    Field("hostname", Any),
    Field("domainname", Any),
    Field("mounts", List(&MOUNT)),
    Field("hooks", HOOKS),
    Field("annotations", GoMap(&Any)),
    Field("linux", LINUX),
    Field("solaris", Any),
    Field("windows", Any),
    Field("vm", Any),
    Field("zos", Any),
]);

const PROCESS: Shape = Struct(&[
    Field("terminal", Any),
    Field("consoleSize", Any),
    Field(
        "user",
        Struct(&[
            Field("uid", Any),
            Field("gid", Any),
            Field("umask", Any),
            Field("additionalGids", Any),
            Field("username", Any),
        ]),
    ),
    Field("args", Any),
    Field("commandLine", Any),
    Field("env", Any),
    Field("cwd", Any),
    Field(
        "capabilities",
        Struct(&[
            Field("bounding", Any),
            Field("effective", Any),
            Field("inheritable", Any),
            Field("permitted", Any),
            Field("ambient", Any),
        ]),
    ),
    Field("rlimits", Any),
    Field("noNewPrivileges", Any),
    Field("apparmorProfile", Any),
    Field("oomScoreAdj", Any),
    Field("scheduler", Any),
    Field("selinuxLabel", Any),
    Field("ioPriority", Any),
    Field("execCPUAffinity", Any),
]);

const ID_MAPPING: Shape = Struct(&[
    Field("containerID", Any),
    Field("hostID", Any),
    Field("size", Any),
]);

const MOUNT: Shape = Struct(&[
    Field("destination", Any),
    Field("type", Any),
    Field("source", Any),
    Field("options", Any),
    Field("uidMappings", List(&ID_MAPPING)),
    Field("gidMappings", List(&ID_MAPPING)),
]);

const HOOK: Shape = Struct(&[
    Field("path", Any),
    Field("args", Any),
    Field("env", Any),
    Field("timeout", Any),
]);

const HOOKS: Shape = Struct(&[
    Field("prestart", List(&HOOK)),
    Field("createRuntime", List(&HOOK)),
    Field("createContainer", List(&HOOK)),
    Field("startContainer", List(&HOOK)),
    Field("poststart", List(&HOOK)),
    Field("poststop", List(&HOOK)),
]);

const LINUX: Shape = Struct(&[
    Field("uidMappings", List(&ID_MAPPING)),
    Field("gidMappings", List(&ID_MAPPING)),
    Field("timeOffsets", GoMap(&Any)),
    Field("sysctl", GoMap(&Any)),
    Field("resources", RESOURCES),
    Field("cgroupsPath", Any),
    Field(
        "namespaces",
        List(&Struct(&[Field("type", Any), Field("path", Any)])),
    ),
    Field(
        "devices",
        List(&Struct(&[
            Field("path", Any),
            Field("type", Any),
            Field("major", Any),
            Field("minor", Any),
            Field("fileMode", Any),
            Field("uid", Any),
            Field("gid", Any),
        ])),
    ),
    Field("seccomp", Any),
    Field("rootfsPropagation", Any),
    Field("maskedPaths", Any),
    Field("readonlyPaths", Any),
    Field("mountLabel", Any),
    Field(
        "intelRdt",
        Struct(&[
            Field("closID", Any),
            Field("l3CacheSchema", Any),
            Field("memBwSchema", Any),
            Field("schemata", Any),
            Field("enableCMT", Any),
            Field("enableMBM", Any),
            Field("enableMonitoring", Any),
        ]),
    ),
    Field("personality", Any),
    Field("netDevices", GoMap(&Struct(&[Field("name", Any)]))),
    Field("memoryPolicy", Any),
]);

const RESOURCES: Shape = Struct(&[
    Field(
        "devices",
        List(&Struct(&[
            Field("allow", Any),
            Field("type", Any),
            Field("major", Any),
            Field("minor", Any),
            Field("access", Any),
        ])),
    ),
    Field("memory", Any),
    Field("cpu", Any),
    Field("pids", Any),
    Field("blockIO", Any),
    Field("hugepageLimits", Any),
    Field("network", Any),
    Field("rdma", GoMap(&Any)),
    Field("unified", GoMap(&Any)),
]);

/// Whether Go's `encoding/json` matches the object key `key` to the struct field `field` (an
/// ASCII name) when ignoring case: equal under Unicode simple folding, where the only non-ASCII
/// characters that fold onto ASCII are the Kelvin sign (to `k`) and the long s (to `s`).
fn folds_to(key: &str, field: &str) -> bool {
    let mut chars = key.chars();
    for wanted in field.bytes() {
        let folded = match chars.next() {
            Some('\u{212A}') => b'k',
            Some('\u{017F}') => b's',
            Some(c) if c.is_ascii() => c as u8,
            _ => return false,
        };
        if !folded.eq_ignore_ascii_case(&wanted) {
            return false;
        }
    }
    chars.next().is_none()
}

/// Where a value is in the config, for errors: a chain of steps back to the top level, kept on
/// the stack while parsing.
#[derive(Clone, Copy)]
struct KeyPath<'a> {
    parent: Option<&'a KeyPath<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl KeyPath<'_> {
    const ROOT: KeyPath<'static> = KeyPath {
        parent: None,
        step: Step::Root,
    };
}

/// Keys in messages: at most this many characters, control characters escaped.
const SHOWN_KEY_CHARS: usize = 64;

/// A key as messages show it: quoted and escaped like a Rust string, shortened when long.
struct ShownKey<'a>(&'a str);

impl fmt::Display for ShownKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(SHOWN_KEY_CHARS) {
            Some((end, _)) => write!(f, "{:?}...", &self.0[..end]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

impl fmt::Display for KeyPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(place) = at {
            steps.push(place.step);
            at = place.parent;
        }
        let mut wrote = false;
        for step in steps.into_iter().rev() {
            match step {
                Step::Root => continue,
                Step::Key(key) if is_plain(key) => {
                    if wrote {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Step::Key(key) => write!(f, "[{}]", ShownKey(key))?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
            wrote = true;
        }
        if !wrote {
            f.write_str("the top level")?;
        }
        Ok(())
    }
}

/// Keys shown without quotes in a place: short ASCII names (every OCI field).
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= SHOWN_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Builds the value at one place, knowing its shape.
struct Reader<'a> {
    shape: &'static Shape,
    place: KeyPath<'a>,
}

impl<'de> DeserializeSeed<'de> for Reader<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let element = match self.shape {
            List(element) => element,
            _ => &Any,
        };
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let place = KeyPath {
                parent: Some(&self.place),
                step: Step::Index(values.len()),
            };
            match seq.next_element_seed(Reader {
                shape: element,
                place,
            })? {
                Some(value) => values.push(value),
                None => return Ok(Value::Array(values)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut values = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if values.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "key {} appears twice in {} (the runtime's Go decoder would keep or merge \
                     the last one): write each key once",
                    ShownKey(&key),
                    self.place
                )));
            }
            let shape = match self.shape {
                Struct(fields) => field_shape::<A::Error>(fields, &key, &self.place)?,
                GoMap(shape) => shape,
                Any | List(_) => &Any,
            };
            let place = KeyPath {
                parent: Some(&self.place),
                step: Step::Key(&key),
            };
            let value = map.next_value_seed(Reader { shape, place })?;
            values.insert(key, value);
        }
        Ok(Value::Object(values))
    }
}

/// The shape of the field `key` names in a struct: its own for an exact name, anything for a
/// key that is no field (Go ignores it), an error for a key Go would match ignoring case.
fn field_shape<E: de::Error>(
    fields: &'static [Field],
    key: &str,
    place: &KeyPath<'_>,
) -> Result<&'static Shape, E> {
    if let Some(Field(_, shape)) = fields.iter().find(|Field(name, _)| *name == key) {
        return Ok(shape);
    }
    match fields.iter().find(|Field(name, _)| folds_to(key, name)) {
        Some(Field(name, _)) => Err(E::custom(format_args!(
            "key {} in {place} is the OCI field \"{name}\" spelled in another case, which the \
             runtime's Go decoder would read as \"{name}\": write the field's exact name",
            ShownKey(key)
        ))),
        None => Ok(&Any),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        parse(text.as_bytes()).expect_err(text).to_string()
    }

    /// `text` is refused with a message that contains `part`.
    fn assert_refused_with(text: &str, part: &str) {
        let message = refused(text);
        assert!(message.contains(part), "{text}: {message}");
    }

    #[test]
    fn accepted_configs_parse_exactly_like_serde_json() {
        for text in [
            r#"{"ociVersion":"1.0.2","process":{"env":["A=1"],"user":{"uid":0}},"zeta":{"b":1,"a":[1,2.5,-3,null,true]}}"#,
            r#"{"annotations":{"Devices":"x","devices":"y","DEVICES":"z"},"linux":{"sysctl":{"a":"1","A":"2"}}}"#,
            r#"{"linux":{"resources":{"devices":[{"allow":true,"access":"rwm"}],"unified":{"io.max":"x","IO.MAX":"y"}}}}"#,
            r#"{"unknownField":{"Devices":1},"linux":{"seccomp":{"defaultAction":"A","DefaultAction":"B"}}}"#,
            r#"{"a":1e300,"b":18446744073709551615,"c":-9223372036854775808,"d":"\u00e9\ud83d\ude00"}"#,
            "[1,2]",
            "  {}  ",
        ] {
            let plain: Value = serde_json::from_str(text).expect(text);
            assert_eq!(parse(text.as_bytes()).expect(text), plain, "{text}");
            let order = |v: &Value| serde_json::to_string(v).expect("serialize");
            assert_eq!(order(&parse(text.as_bytes()).expect(text)), order(&plain));
        }
    }

    #[test]
    fn syntax_errors_are_serde_json_errors() {
        for text in ["{", "{}x", "{\"a\":1,}", "", "{\"a\":1e400}"] {
            let plain = serde_json::from_str::<Value>(text)
                .expect_err(text)
                .to_string();
            assert_eq!(refused(text), plain, "{text}");
        }
    }

    /// The issue's config: runc enforces the deny-all of the last key, an exact reader would
    /// have seen allow-all.
    #[test]
    fn a_case_variant_of_a_field_is_refused() {
        let text = r#"{"linux":{"resources":{"devices":[{"allow":true,"access":"rwm"}],"DEVICES":[{"allow":false,"access":"rwm"}]}}}"#;
        assert_eq!(
            refused(text),
            "key \"DEVICES\" in linux.resources is the OCI field \"devices\" spelled in another \
             case, which the runtime's Go decoder would read as \"devices\": write the field's \
             exact name at line 1 column 74"
        );
        for (text, place, field) in [
            (r#"{"Process":{}}"#, "the top level", "process"),
            (r#"{"process":{"ENV":[]}}"#, "process", "env"),
            (
                r#"{"process":{"capabilities":{"Bounding":[]}}}"#,
                "process.capabilities",
                "bounding",
            ),
            (
                r#"{"annotations":{},"Annotations":{}}"#,
                "the top level",
                "annotations",
            ),
            (r#"{"root":{"PATH":"/"}}"#, "root", "path"),
            (r#"{"linux":{"cgroupspath":"/x"}}"#, "linux", "cgroupsPath"),
            (
                r#"{"linux":{"namespaces":[{"TYPE":"user"}]}}"#,
                "linux.namespaces[0]",
                "type",
            ),
            (
                r#"{"linux":{"uidMappings":[{},{"hostid":1}]}}"#,
                "linux.uidMappings[1]",
                "hostID",
            ),
            (
                r#"{"linux":{"devices":[{"Major":1}]}}"#,
                "linux.devices[0]",
                "major",
            ),
            (
                r#"{"linux":{"resources":{"devices":[{"allow":true,"Access":"r"}]}}}"#,
                "linux.resources.devices[0]",
                "access",
            ),
            (r#"{"mounts":[{"Source":"/"}]}"#, "mounts[0]", "source"),
            (
                r#"{"hooks":{"prestart":[{"PATH":"/x"}]}}"#,
                "hooks.prestart[0]",
                "path",
            ),
            (
                r#"{"linux":{"netDevices":{"eth0":{"NAME":"x"}}}}"#,
                "linux.netDevices.eth0",
                "name",
            ),
            // Go's folding maps the Kelvin sign onto k and the long s onto s.
            ("{\"hoo\u{212A}s\":{}}", "the top level", "hooks"),
            (
                "{\"linux\":{\"re\u{017F}ources\":{}}}",
                "linux",
                "resources",
            ),
        ] {
            assert_refused_with(text, &format!(" in {place} is the OCI field \"{field}\" "));
        }
    }

    #[test]
    fn a_key_given_twice_is_refused_anywhere() {
        assert_eq!(
            refused(r#"{"linux":{"resources":{"devices":[],"devices":[]}}}"#),
            "key \"devices\" appears twice in linux.resources (the runtime's Go decoder would \
             keep or merge the last one): write each key once at line 1 column 45"
        );
        for (text, place) in [
            (r#"{"a":1,"a":2}"#, "the top level"),
            (r#"{"annotations":{"k":"1","k":"2"}}"#, "annotations"),
            (r#"{"x":[{},{"y":{"z":1,"z":1}}]}"#, "x[1].y"),
            (
                r#"{"annotations":{"a.b/c":{"k":1,"k":2}}}"#,
                "annotations[\"a.b/c\"]",
            ),
        ] {
            assert_refused_with(text, &format!(" twice in {place} "));
        }
    }

    #[test]
    fn folding_matches_go() {
        assert!(folds_to("DEVICES", "devices"));
        assert!(folds_to("dEvIcEs", "devices"));
        assert!(folds_to("\u{212A}", "k"));
        assert!(folds_to("\u{017F}", "S"));
        assert!(folds_to("L3CACHESCHEMA", "l3CacheSchema"));
        assert!(!folds_to("devices ", "devices"));
        assert!(!folds_to("device", "devices"));
        assert!(!folds_to("devic\u{e9}s", "devices"));
        // Dotless and dotted i are not in i's simple fold orbit.
        assert!(!folds_to("\u{131}d", "id"));
        assert!(!folds_to("\u{130}d", "id"));
    }

    #[test]
    fn long_and_odd_keys_are_shown_short_and_escaped() {
        let long = "k".repeat(100);
        let message = refused(&format!(r#"{{"annotations":{{"{long}":1,"{long}":2}}}}"#));
        assert!(message.contains(&format!("key \"{}\"... appears", "k".repeat(64))));
        let message = refused(r#"{"annotations":{"a\nb":1,"a\nb":2}}"#);
        assert!(message.contains(r#"key "a\nb" appears"#), "{message}");
        assert_eq!(message.lines().count(), 1);
    }
}
