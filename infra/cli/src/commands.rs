//! The request-and-print subcommands: each builds one or two API calls and prints the answer.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
// The server's own bounds on one `start-batch` request, from the crate that enforces them: the
// most starts, the most invocations they raise (each start once per matching subscription)
// and the most bytes of input they write (counted the same way).
use triggerline::limits::{
    MAX_BATCH_INVOCATIONS as BATCH_INVOCATIONS, MAX_BATCH_STARTS as BATCH_STARTS,
    MAX_BATCH_WRITE_BYTES as BATCH_WRITE_BYTES, MAX_BODY_BYTES,
};

use crate::Outcome;
use crate::args::{Command, Create, Filter, Invoke, Status, Subscriptions, Triggers, Update};
use crate::client::{Api, eq_filter};
use crate::error::{Error, Result};
use crate::output::{field, fields, pretty, table, text};

const TRIGGERS: &str = "/triggers/v1";
const SUBSCRIPTIONS: &str = "/trigger-subscriptions/v1";
const INVOCATIONS: &str = "/trigger-invocations/v1";

pub async fn run(command: Command) -> Result<Outcome> {
    match command {
        Command::Triggers { command } => triggers(command).await,
        Command::Subscriptions { command } => subscriptions(command).await,
        Command::Filter { command } => filter(command).await,
        Command::Invoke(invoke) => self::invoke(invoke).await,
        Command::Status(status) => self::status(status).await,
        Command::Listen(listen) => crate::listen::run(listen).await,
    }
}

fn print_json(value: &Value) {
    outln!("{}", pretty(value));
}

async fn triggers(command: Triggers) -> Result<Outcome> {
    match command {
        Triggers::List { connection } => {
            let api = Api::new(&connection)?;
            let list = api.get(TRIGGERS, &[("sorters", "id".to_owned())]).await?;
            if connection.json {
                print_json(&list);
            } else {
                let rows = items(&list, TRIGGERS)?
                    .iter()
                    .map(|t| vec![field(t, "id"), field(t, "type"), field(t, "name")])
                    .collect();
                outln!("{}", table(&["id", "type", "name"], rows));
            }
        }
        Triggers::Show { connection, id } => {
            let api = Api::new(&connection)?;
            let trigger = find_trigger(&api, &id).await?;
            if connection.json {
                print_json(&trigger);
            } else {
                outln!(
                    "{}",
                    fields(&[
                        ("id", field(&trigger, "id")),
                        ("name", field(&trigger, "name")),
                        ("type", field(&trigger, "type")),
                        ("description", field(&trigger, "description")),
                    ])
                );
                outln!("\nexample input:\n{}", pretty(&trigger["exampleInput"]));
                if !trigger["exampleOutput"].is_null() {
                    outln!("\nexample output:\n{}", pretty(&trigger["exampleOutput"]));
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

pub async fn find_trigger(api: &Api, id: &str) -> Result<Value> {
    let list = api
        .get(TRIGGERS, &[("filters", eq_filter("id", id)?)])
        .await?;
    first(
        list,
        TRIGGERS,
        "trigger",
        id,
        "; `triggerline triggers list` shows the catalog",
    )
}

pub async fn find_subscription(api: &Api, id: &str) -> Result<Value> {
    let list = api
        .get(SUBSCRIPTIONS, &[("filters", eq_filter("id", id)?)])
        .await?;
    first(
        list,
        SUBSCRIPTIONS,
        "subscription",
        id,
        "; `triggerline subscriptions list` shows them",
    )
}

fn first(
    list: Value,
    path: &str,
    what: &'static str,
    id: &str,
    hint: &'static str,
) -> Result<Value> {
    items(&list, path)?
        .first()
        .cloned()
        .ok_or_else(|| Error::NotFound {
            what,
            id: id.to_owned(),
            hint,
        })
}

fn items<'a>(list: &'a Value, path: &str) -> Result<&'a Vec<Value>> {
    list.as_array().ok_or_else(|| Error::BadResponse {
        path: path.to_owned(),
        reason: "expected a JSON array".to_owned(),
    })
}

async fn subscriptions(command: Subscriptions) -> Result<Outcome> {
    let connection = match &command {
        Subscriptions::List { connection, .. }
        | Subscriptions::Show { connection, .. }
        | Subscriptions::Enable { connection, .. }
        | Subscriptions::Disable { connection, .. }
        | Subscriptions::Delete { connection, .. } => connection,
        Subscriptions::Create(create) => &create.connection,
        Subscriptions::Update(update) => &update.connection,
    };
    let api = Api::new(connection)?;
    let json = connection.json;
    match command {
        Subscriptions::List { trigger, .. } => {
            let mut query = vec![("sorters", "triggerId".to_owned())];
            if let Some(trigger) = &trigger {
                query.push(("filters", eq_filter("triggerId", trigger)?));
            }
            let list = api.get(SUBSCRIPTIONS, &query).await?;
            if json {
                print_json(&list);
            } else {
                let rows = items(&list, SUBSCRIPTIONS)?
                    .iter()
                    .map(subscription_row)
                    .collect();
                outln!(
                    "{}",
                    table(
                        &["id", "name", "trigger", "type", "mode", "enabled", "target"],
                        rows
                    )
                );
            }
        }
        Subscriptions::Show { id, .. } => {
            let subscription = find_subscription(&api, &id).await?;
            print_subscription(&subscription, json);
        }
        Subscriptions::Create(create) => {
            let body = create_body(*create).await?;
            let created = api.post(SUBSCRIPTIONS, &body).await?.body;
            print_subscription(&created, json);
            if !json {
                outln!(
                    "\nsigning secret (shown this once; receivers verify webhook-signature with it):\n{}",
                    field(&created, "signingSecret")
                );
            }
        }
        Subscriptions::Update(update) => {
            let id = update.id.clone();
            let operations = patch_operations(*update).await?;
            let updated = api
                .patch(
                    &format!("{SUBSCRIPTIONS}/{}", path_segment(&id)?),
                    &operations,
                )
                .await?;
            print_subscription(&updated, json);
        }
        Subscriptions::Enable { id, .. } => set_enabled(&api, &id, true, json).await?,
        Subscriptions::Disable { id, .. } => set_enabled(&api, &id, false, json).await?,
        Subscriptions::Delete { id, .. } => {
            api.delete(&format!("{SUBSCRIPTIONS}/{}", path_segment(&id)?))
                .await?;
            if json {
                print_json(&json!({"id": id, "deleted": true}));
            } else {
                outln!("deleted subscription {id}");
            }
        }
    }
    Ok(Outcome::Ok)
}

async fn set_enabled(api: &Api, id: &str, enabled: bool, json: bool) -> Result<()> {
    let operations = json!([{"op": "replace", "path": "/enabled", "value": enabled}]);
    let updated = api
        .patch(
            &format!("{SUBSCRIPTIONS}/{}", path_segment(id)?),
            &operations,
        )
        .await?;
    print_subscription(&updated, json);
    Ok(())
}

/// An id as one path segment: Triggerline's ids are UUIDs, so anything that would change the
/// path is a mistake.
fn path_segment(id: &str) -> Result<&str> {
    if id.is_empty() || id.contains(['/', '?', '#', '%']) {
        return Err(Error::usage(
            "id",
            format!("`{id}` is not a subscription id"),
        ));
    }
    Ok(id)
}

fn subscription_row(s: &Value) -> Vec<String> {
    let http = &s["httpConfig"];
    let (mode, target) = if http.is_object() {
        (field(http, "httpDispatchMode"), field(http, "url"))
    } else {
        let bus = &s["eventBridgeConfig"];
        (
            "ASYNC".to_owned(),
            format!("{}/{}", field(bus, "awsAccount"), field(bus, "awsRegion")),
        )
    };
    vec![
        field(s, "id"),
        field(s, "name"),
        field(s, "triggerId"),
        field(s, "type"),
        mode,
        field(s, "enabled"),
        target,
    ]
}

fn print_subscription(s: &Value, json: bool) {
    if json {
        print_json(s);
        return;
    }
    let row = subscription_row(s);
    outln!(
        "{}",
        fields(&[
            ("id", row[0].clone()),
            ("name", row[1].clone()),
            (
                "trigger",
                format!("{} ({})", row[2], field(s, "triggerName"))
            ),
            ("type", row[3].clone()),
            ("mode", row[4].clone()),
            ("target", row[6].clone()),
            ("auth", field(&s["httpConfig"], "httpAuthenticationType")),
            ("enabled", row[5].clone()),
            ("filter", field(s, "filter")),
            ("deadline", field(s, "responseDeadline")),
            ("description", field(s, "description")),
        ])
    );
}

async fn create_body(create: Create) -> Result<Value> {
    if let Some(path) = &create.from_file {
        return read_json(path).await;
    }
    let mut body = Map::new();
    body.insert("name".into(), json!(create.name));
    body.insert("triggerId".into(), json!(create.trigger));
    body.insert("enabled".into(), json!(!create.disabled));
    if let Some(account) = create.eventbridge_account {
        body.insert("type".into(), json!("EVENTBRIDGE"));
        body.insert(
            "eventBridgeConfig".into(),
            json!({"awsAccount": account, "awsRegion": create.eventbridge_region}),
        );
    } else {
        body.insert("type".into(), json!("HTTP"));
        let mut http = json!({
            "url": create.target,
            "httpDispatchMode": create.mode.as_api(),
            "httpAuthenticationType": "NO_AUTH",
        });
        if let Some(token) = create.bearer_token {
            http["httpAuthenticationType"] = json!("BEARER_TOKEN");
            http["bearerTokenAuthConfig"] = json!({"bearerToken": token.expose()});
        } else if let Some(pair) = create.basic_auth {
            let Some((user, password)) = pair.expose().split_once(':') else {
                return Err(Error::usage("--basic-auth", "write it as USER:PASSWORD"));
            };
            http["httpAuthenticationType"] = json!("BASIC_AUTH");
            http["basicAuthConfig"] = json!({"userName": user, "password": password});
        }
        body.insert("httpConfig".into(), http);
    }
    if let Some(description) = create.fields.description {
        body.insert("description".into(), json!(description));
    }
    if let Some(filter) = create.fields.filter {
        body.insert("filter".into(), json!(filter));
    }
    if let Some(deadline) = create.fields.deadline {
        body.insert("responseDeadline".into(), json!(deadline));
    }
    Ok(Value::Object(body))
}

async fn patch_operations(update: Update) -> Result<Value> {
    let mut operations = Vec::new();
    let mut replace = |path: &str, value: Value| {
        operations.push(json!({"op": "replace", "path": path, "value": value}));
    };
    if let Some(name) = update.name {
        replace("/name", json!(name));
    }
    if let Some(url) = update.target {
        replace("/httpConfig/url", json!(url));
    }
    if let Some(mode) = update.mode {
        replace("/httpConfig/httpDispatchMode", json!(mode.as_api()));
    }
    if let Some(description) = update.fields.description {
        replace("/description", json!(description));
    }
    if let Some(filter) = update.fields.filter {
        replace("/filter", json!(filter));
    }
    if let Some(deadline) = update.fields.deadline {
        replace("/responseDeadline", json!(deadline));
    }
    if let Some(token) = update.bearer_token {
        replace("/httpConfig/httpAuthenticationType", json!("BEARER_TOKEN"));
        replace(
            "/httpConfig/bearerTokenAuthConfig",
            json!({"bearerToken": token.expose()}),
        );
    }
    if let Some(path) = &update.patch {
        match read_json(path).await? {
            Value::Array(more) => operations.extend(more),
            _ => return Err(Error::usage("--patch", "must be a JSON Patch array")),
        }
    }
    if operations.is_empty() {
        return Err(Error::usage(
            "update",
            "nothing to change: give at least one of --name, --target, --mode, --description, --filter, --deadline, --bearer-token, --patch",
        ));
    }
    Ok(Value::Array(operations))
}

async fn filter(command: Filter) -> Result<Outcome> {
    let Filter::Test {
        connection,
        filter,
        trigger,
        input,
    } = command;
    let api = Api::new(&connection)?;
    let input = match (input, trigger) {
        (Some(path), _) => read_json(&path).await?,
        (None, Some(trigger)) => find_trigger(&api, &trigger).await?["exampleInput"].clone(),
        (None, None) => return Err(Error::usage("filter test", "give --trigger or --input")),
    };
    let answer = api
        .post(
            &format!("{SUBSCRIPTIONS}/validate-filter"),
            &json!({"input": input, "filter": filter}),
        )
        .await?
        .body;
    let valid = answer["isValid"].as_bool() == Some(true);
    if connection.json {
        print_json(&answer);
    } else {
        let verdict = match (
            answer["isValidJSONPath"].as_bool(),
            answer["isPathExist"].as_bool(),
        ) {
            (Some(true), Some(true)) => "matches: the filter selects something in this input",
            (Some(true), _) => {
                "no match: the filter is valid JSONPath but selects nothing in this input"
            }
            _ => "invalid: the filter is not valid JSONPath",
        };
        outln!("{verdict}");
    }
    Ok(if valid {
        Outcome::Ok
    } else {
        Outcome::Negative
    })
}

async fn invoke(invoke: Invoke) -> Result<Outcome> {
    let api = Api::new(&invoke.connection)?;
    let json = invoke.connection.json;
    if let Some(path) = &invoke.inputs {
        return invoke_batch(&api, &invoke, path).await;
    }
    let input = match &invoke.input {
        Some(path) => Some(read_json(path).await?),
        None => None,
    };
    if invoke.test {
        let mut body = json!({"triggerId": invoke.trigger, "contentJson": {}});
        if let Some(input) = input {
            body["input"] = input;
        }
        if !invoke.subscriptions.is_empty() {
            body["subscriptionIds"] = json!(invoke.subscriptions);
        }
        let answer = api.post(&format!("{INVOCATIONS}/test"), &body).await?;
        let list = if answer.status == StatusCode::NO_CONTENT {
            json!([])
        } else {
            answer.body
        };
        if json {
            print_json(&list);
        } else if items(&list, INVOCATIONS)?.is_empty() {
            outln!("no subscription of {} received the test", invoke.trigger);
        } else {
            let rows = items(&list, INVOCATIONS)?
                .iter()
                .map(|i| vec![field(i, "id"), field(i, "triggerId")])
                .collect();
            outln!("{}", table(&["invocation", "trigger"], rows));
        }
        return Ok(Outcome::Ok);
    }
    let input = match input {
        Some(input) => input,
        None => find_trigger(&api, &invoke.trigger).await?["exampleInput"].clone(),
    };
    let mut body =
        json!({"triggerId": invoke.trigger, "input": input, "isSynchronous": invoke.sync});
    if let Some(delay) = &invoke.delay {
        body["delay"] =
            json!(crate::duration::to_iso(delay).map_err(|e| Error::usage("--delay", e))?);
    }
    let not_in_time = StatusCode::from_u16(542).unwrap_or(StatusCode::GATEWAY_TIMEOUT);
    let answer = api
        .send(
            Method::POST,
            &format!("{INVOCATIONS}/start"),
            &[],
            Some(&body),
            &[not_in_time],
        )
        .await?;
    if json {
        print_json(&answer.body);
    }
    let invocations = answer.body["invocations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !json {
        if invocations.is_empty() {
            outln!(
                "no enabled subscription of {} matched the input",
                invoke.trigger
            );
        } else {
            let rows = invocations
                .iter()
                .map(|i| {
                    let outcome = if !i["error"].is_null() {
                        field(&i["error"], "message")
                    } else {
                        text(i.get("output").unwrap_or(&Value::Null))
                    };
                    vec![
                        field(i, "id"),
                        field(i, "subscriptionName"),
                        field(i, "status"),
                        outcome,
                    ]
                })
                .collect();
            outln!(
                "{}",
                table(&["invocation", "subscription", "status", "output"], rows)
            );
        }
        if answer.status == not_in_time {
            outln!(
                "not completed within the server's sync wait; it goes on: `triggerline status <invocation>`"
            );
        }
    }
    let completed = invocations.iter().all(|i| i["status"] == "COMPLETED");
    Ok(
        if invoke.sync && (answer.status == not_in_time || !completed) {
            Outcome::Negative
        } else {
            Outcome::Ok
        },
    )
}

/// The most bytes of starts the CLI puts in one `start-batch` request: under the server's
/// request body limit, with room for the wrapper. A start larger than this on its own goes
/// alone, and the server says what is too large.
const BATCH_BYTES: usize = MAX_BODY_BYTES - 1024;

/// How many starts and bytes of starts go in one request when each start may raise `fan_out`
/// invocations (the trigger's enabled subscriptions; a filter can only make it fewer).
fn batch_limits(fan_out: usize) -> (usize, usize) {
    let fan_out = fan_out.max(1);
    (
        BATCH_STARTS.min(BATCH_INVOCATIONS / fan_out).max(1),
        BATCH_BYTES.min(BATCH_WRITE_BYTES / fan_out),
    )
}

/// How many enabled subscriptions `trigger` has: the most invocations one start to it raises.
async fn fan_out(api: &Api, trigger: &str) -> Result<usize> {
    let query = [
        ("filters", eq_filter("triggerId", trigger)?),
        ("limit", "250".to_owned()),
    ];
    let list = api.get(SUBSCRIPTIONS, &query).await?;
    Ok(items(&list, SUBSCRIPTIONS)?
        .iter()
        .filter(|s| s["enabled"] != Value::Bool(false))
        .count())
}

/// `invoke --inputs`: one start per line, sent as `start-batch` requests of at most
/// [`BATCH_STARTS`] starts and [`BATCH_BYTES`], fewer to a trigger with many subscriptions
/// ([`batch_limits`]). Every line is read and parsed before anything is
/// sent. A refused request stops the command; the requests before it stay raised, as the
/// server keeps a batch's accepted groups.
async fn invoke_batch(api: &Api, invoke: &Invoke, path: &Path) -> Result<Outcome> {
    let delay = match &invoke.delay {
        Some(delay) => {
            Some(crate::duration::to_iso(delay).map_err(|e| Error::usage("--delay", e))?)
        }
        None => None,
    };
    let starts = read_json_lines(path)
        .await?
        .into_iter()
        .map(|(line, input)| {
            let mut start = json!({"triggerId": invoke.trigger, "input": input});
            if let Some(delay) = &delay {
                start["delay"] = json!(delay);
            }
            (line, start)
        })
        .collect::<Vec<_>>();
    if starts.is_empty() {
        return Err(Error::usage(
            path.display().to_string(),
            "holds no input (one JSON value per line)",
        ));
    }
    let limits = batch_limits(fan_out(api, &invoke.trigger).await?);
    let mut raised = Vec::with_capacity(starts.len());
    let mut rows = Vec::new();
    for chunk in batches(&starts, limits) {
        let body = json!({"starts": chunk.iter().map(|(_, start)| start).collect::<Vec<_>>()});
        let answer = api
            .post(&format!("{INVOCATIONS}/start-batch"), &body)
            .await
            .map_err(|e| naming_lines(e, chunk))?;
        let answered = answer.body["starts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for ((line, _), started) in chunk.iter().zip(answered) {
            for invocation in items(&started["invocations"], INVOCATIONS)? {
                rows.push(vec![
                    line.to_string(),
                    field(invocation, "id"),
                    field(invocation, "subscriptionName"),
                ]);
            }
            raised.push(started);
        }
    }
    if invoke.connection.json {
        print_json(&json!({"starts": raised}));
    } else if rows.is_empty() {
        outln!(
            "no enabled subscription of {} matched any of the {} inputs",
            invoke.trigger,
            starts.len()
        );
    } else {
        outln!("{}", table(&["line", "invocation", "subscription"], rows));
    }
    Ok(Outcome::Ok)
}

async fn status(status: Status) -> Result<Outcome> {
    let api = Api::new(&status.connection)?;
    let json = status.connection.json;
    if let Some(id) = &status.id {
        let mut query = Vec::new();
        if let Some(wait) = &status.wait {
            let wait = crate::duration::to_iso(wait).map_err(|e| Error::usage("--wait", e))?;
            query.push(("wait", wait));
        }
        let detail = api
            .get(
                &format!("{INVOCATIONS}/{}/status", path_segment(id)?),
                &query,
            )
            .await?;
        if json {
            print_json(&detail);
        } else {
            outln!("{}", timeline(&detail));
        }
        return Ok(Outcome::Ok);
    }
    let mut query = vec![
        ("limit", status.limit.to_string()),
        ("sorters", "-created".to_owned()),
    ];
    let mut filters = Vec::new();
    if let Some(trigger) = &status.trigger {
        filters.push(eq_filter("triggerId", trigger)?);
    }
    if let Some(subscription) = &status.subscription {
        filters.push(eq_filter("subscriptionId", subscription)?);
    }
    if !filters.is_empty() {
        query.push(("filters", filters.join(" and ")));
    }
    let list = api.get(&format!("{INVOCATIONS}/status"), &query).await?;
    if json {
        print_json(&list);
    } else {
        let rows = items(&list, INVOCATIONS)?
            .iter()
            .map(|i| {
                vec![
                    field(i, "id"),
                    field(i, "triggerId"),
                    field(i, "subscriptionName"),
                    field(i, "type"),
                    field(i, "status"),
                    field(i, "created"),
                    field(i, "completed"),
                ]
            })
            .collect();
        outln!(
            "{}",
            table(
                &[
                    "id",
                    "trigger",
                    "subscription",
                    "type",
                    "status",
                    "created",
                    "completed"
                ],
                rows
            )
        );
    }
    Ok(Outcome::Ok)
}

/// One invocation: its fields, then what happened in time order.
fn timeline(detail: &Value) -> String {
    let mut out = fields(&[
        ("invocation", field(detail, "id")),
        ("trigger", field(detail, "triggerId")),
        (
            "subscription",
            format!(
                "{} ({})",
                field(detail, "subscriptionName"),
                field(detail, "subscriptionId")
            ),
        ),
        ("type", field(detail, "type")),
        ("mode", field(detail, "responseMode")),
        ("status", field(detail, "status")),
        ("deadline", field(detail, "deadline")),
    ]);
    out.push_str("\n\ntimeline:\n");
    let mut events = vec![(field(detail, "created"), "created".to_owned())];
    for (n, attempt) in detail["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let answer = match attempt["statusCode"].as_u64() {
            Some(code) => format!("HTTP {code}"),
            None => "no answer".to_owned(),
        };
        let mut line = format!(
            "attempt {} to {}: {answer} in {} ms, {}",
            n + 1,
            field(attempt, "target"),
            field(attempt, "durationMs"),
            field(attempt, "outcome"),
        );
        if !attempt["error"].is_null() {
            line.push_str(&format!(" ({})", field(attempt, "error")));
        }
        events.push((field(attempt, "startedAt"), line));
    }
    if !detail["completed"].is_null() {
        let completion = &detail["completeInvocationInput"];
        let mut line = field(detail, "status");
        if !completion["localizedError"].is_null() {
            line.push_str(&format!(
                ": {}",
                field(&completion["localizedError"], "message")
            ));
        } else if !completion["output"].is_null() {
            line.push_str(&format!(", output {}", completion["output"]));
        }
        events.push((field(detail, "completed"), line));
    }
    // RFC 3339 in UTC sorts as text; the sort is stable, so "created" stays before an attempt
    // made in the same millisecond.
    events.sort_by(|a, b| a.0.cmp(&b.0));
    for (at, what) in events {
        out.push_str(&format!("  {at}  {what}\n"));
    }
    out.push_str(&format!(
        "\ninput:\n{}",
        pretty(&detail["startInvocationInput"]["input"])
    ));
    out
}

/// A JSON document from a file, or from stdin for `-`.
pub async fn read_json(path: &Path) -> Result<Value> {
    let text = read_text(path).await?;
    serde_json::from_str(&text)
        .map_err(|e| Error::usage(path.display().to_string(), format!("not JSON: {e}")))
}

/// A file's text, or stdin's for `-`.
async fn read_text(path: &Path) -> Result<String> {
    Ok(if path == Path::new("-") {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut text)
            .await
            .map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })?;
        text
    } else {
        tokio::fs::read_to_string(path)
            .await
            .map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })?
    })
}

/// `starts` cut into consecutive requests' worth: at most [`BATCH_STARTS`] each and, but for a
/// start too large alone, at most [`BATCH_BYTES`] of JSON.
fn batches(
    starts: &[(usize, Value)],
    (most, most_bytes): (usize, usize),
) -> Vec<&[(usize, Value)]> {
    let mut batches = Vec::new();
    let (mut first, mut bytes) = (0, 0);
    for (i, (_, start)) in starts.iter().enumerate() {
        // The start and the comma before it.
        let size = start.to_string().len() + 1;
        if i > first && (i - first == most || bytes + size > most_bytes) {
            batches.push(&starts[first..i]);
            (first, bytes) = (i, 0);
        }
        bytes += size;
    }
    if first < starts.len() {
        batches.push(&starts[first..]);
    }
    batches
}

/// A refusal of one `start-batch` request, saying which line of the file each `starts[i]` it
/// names came from: the server counts within its request, and blank lines are skipped.
fn naming_lines(error: Error, chunk: &[(usize, Value)]) -> Error {
    let Error::Refused {
        method,
        path,
        status,
        mut message,
    } = error
    else {
        return error;
    };
    let mut named = Vec::new();
    for (at, _) in message.match_indices("starts[") {
        let from = &message[at + "starts[".len()..];
        let digits = from.bytes().take_while(u8::is_ascii_digit).count();
        if let Some((line, _)) = from[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|i| chunk.get(i))
        {
            let said = format!("starts[{}] is line {line}", &from[..digits]);
            if !named.contains(&said) {
                named.push(said);
            }
        }
    }
    if !named.is_empty() {
        message = format!("{message} ({})", named.join(", "));
    }
    Error::Refused {
        method,
        path,
        status,
        message,
    }
}

/// The JSON values of a JSON Lines file (`-` for stdin), each with its line number (from 1);
/// blank lines are skipped.
async fn read_json_lines(path: &Path) -> Result<Vec<(usize, Value)>> {
    let text = read_text(path).await?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line)
                .map(|value| (index + 1, value))
                .map_err(|e| {
                    Error::usage(
                        format!("{}:{}", path.display(), index + 1),
                        format!("not JSON: {e}"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_100_starts_and_fit_the_request_body() {
        let start = |bytes: usize| json!({"input": "x".repeat(bytes)});
        let small: Vec<_> = (1..=250).map(|line| (line, start(10))).collect();
        let large: Vec<_> = (1..=7).map(|line| (line, start(300_000))).collect();
        let huge = vec![(1, start(10)), (2, start(2_000_000)), (3, start(10))];

        let sizes = |starts, fan_out| {
            batches(starts, batch_limits(fan_out))
                .iter()
                .map(|b| b.len())
                .collect::<Vec<_>>()
        };

        assert_eq!(sizes(&small, 1), [100, 100, 50]);
        assert_eq!(sizes(&large, 1), [3, 3, 1]);
        // Too large alone: sent alone, for the server to refuse by name.
        assert_eq!(sizes(&huge, 1), [1, 1, 1]);
        assert!(batches(&[], batch_limits(1)).is_empty());
        // No subscription yet: as for one (nothing will match, and nothing is refused).
        assert_eq!(sizes(&small, 0), [100, 100, 50]);
        // 50 subscriptions: 20 starts raise the most invocations a request may, and 300 KB
        // starts one each (two would write 30 MB of fan-out).
        assert_eq!(
            sizes(&small, 50),
            [20; 12].iter().copied().chain([10]).collect::<Vec<_>>()
        );
        assert_eq!(sizes(&large, 50), [1; 7]);
        // 11: 90 starts (990 invocations).
        assert_eq!(sizes(&small, 11), [90, 90, 70]);
    }

    #[test]
    fn the_timeline_orders_creation_attempts_and_completion() {
        let detail = json!({
            "id": "inv-1", "triggerId": "idn:x", "subscriptionId": "s", "subscriptionName": "S",
            "type": "REAL_TIME", "status": "COMPLETED", "responseMode": "async",
            "created": "2026-01-01T00:00:00.000Z", "completed": "2026-01-01T00:00:03.000Z",
            "deadline": "2026-01-01T01:00:00.000Z",
            "attempts": [
                {"startedAt": "2026-01-01T00:00:01.000Z", "target": "127.0.0.1", "statusCode": 500,
                 "durationMs": 3, "outcome": "failed", "error": "HTTP 500"},
                {"startedAt": "2026-01-01T00:00:02.000Z", "target": "127.0.0.1", "statusCode": 200,
                 "durationMs": 2, "outcome": "acknowledged", "error": null}],
            "startInvocationInput": {"input": {"a": 1}},
            "completeInvocationInput": {"output": {"approved": true}, "localizedError": null}
        });
        let out = timeline(&detail);
        let created = out.find("created").unwrap();
        let first = out
            .find("attempt 1 to 127.0.0.1: HTTP 500 in 3 ms, failed (HTTP 500)")
            .unwrap();
        let second = out
            .find("attempt 2 to 127.0.0.1: HTTP 200 in 2 ms, acknowledged")
            .unwrap();
        let done = out.find(r#"COMPLETED, output {"approved":true}"#).unwrap();
        assert!(created < first && first < second && second < done, "{out}");
    }
}
