//! Turns `catalog/*.json` into Rust: the list of catalog files, and one validator per
//! `inputSchema` and `outputSchema`, generated at compile time by `jsonschema`'s `validator`
//! macro. Compiled validators carry only the checks their schema uses, so the Lambda functions do
//! not link the runtime schema compiler and its regex engines.

use std::path::Path;

fn main() {
    // Read when the script runs, not baked in when it is compiled: a compiled build script is
    // reused for a checkout at another path (a worktree, a moved clone) sharing the target dir.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("catalog");
    println!("cargo:rerun-if-changed={}", dir.display());

    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("shared/catalog is readable")
        .map(|entry| entry.expect("catalog entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();

    // Every data file, as one JSON object `{file name: trigger}`, without the files' layout and
    // deflated: the catalog is 109 kB as written and under 10 kB so, in every Lambda bootstrap
    // (each is held to a 6 MB budget). It is inflated once, at first use (well under 1 ms).
    let mut files = serde_json::Map::new();
    for name in &names {
        let path = dir.join(format!("{name}.json"));
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).expect("catalog file is readable");
        let trigger: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("catalog/{name}.json is not JSON: {e}"));
        files.insert(name.clone(), trigger);
    }
    let json = serde_json::to_vec(&files).expect("a JSON value serializes");
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut deflater, &json).expect("deflating into memory");
    let deflated = deflater.finish().expect("deflating into memory");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("catalog.json.deflate"), deflated)
        .expect("OUT_DIR is writable");

    let mut out = String::new();
    out.push_str(
        "/// Every catalog data file as one deflated JSON object, `{file name: trigger}`.\n\
         const DEFLATED: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/catalog.json.deflate\"));\n\n",
    );

    let mut inputs = String::new();
    let mut outputs = String::new();
    for name in &names {
        let path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).expect("catalog file is readable");
        let trigger: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("catalog/{name}.json is not JSON: {e}"));
        let id = format!("idn:{name}");
        let base = camel(name);
        let input = trigger
            .get("inputSchema")
            .unwrap_or_else(|| panic!("catalog/{name}.json has no inputSchema"));
        validator(&mut out, &format!("{base}Input"), input);
        inputs.push_str(&format!("        {id:?} => Some({base}Input::validate),\n"));
        if let Some(output) = trigger.get("outputSchema").filter(|s| !s.is_null()) {
            validator(&mut out, &format!("{base}Output"), output);
            outputs.push_str(&format!(
                "        {id:?} => Some({base}Output::validate),\n"
            ));
        }
    }

    out.push_str(&format!("/// The compiled `inputSchema` check of trigger `id`.\n\
         fn input_check(id: &str) -> Option<Check> {{\n    match id {{\n{inputs}        _ => None,\n    }}\n}}\n\n\
         /// The compiled `outputSchema` check of trigger `id`, if it has one.\n\
         fn output_check(id: &str) -> Option<Check> {{\n    match id {{\n{outputs}        _ => None,\n    }}\n}}\n"
    ));

    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("catalog.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}

fn validator(out: &mut String, name: &str, schema: &serde_json::Value) {
    // A raw string needs a delimiter the schema text cannot contain.
    let text = schema.to_string();
    assert!(
        !text.contains("\"####"),
        "schema text would end the raw string"
    );
    out.push_str(&format!(
        "#[jsonschema::validator(schema = r####\"{text}\"####, validate_formats = true, \
         methods = {{ is_valid = false, validate = true, iter_errors = false }})]\n\
         struct {name};\n"
    ));
    out.push('\n');
}

/// `access-request-pre-approval` → `AccessRequestPreApproval`.
fn camel(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}
