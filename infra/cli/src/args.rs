//! The client subcommands' arguments (clap derive). `infra/local`'s `main.rs` flattens
//! [`Command`] beside `serve`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use url::Url;

/// A credential given as an argument or in the environment (an API token, a webhook's bearer
/// token or password, a signing secret): `Debug` of the arguments shows `<redacted>` for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    /// The credential itself, for the one place that sends or uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Sensitive {
    fn from(value: String) -> Self {
        Sensitive(value)
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Environment variables the client reads, named once.
pub mod env {
    pub const URL: &str = "TRIGGERLINE_URL";
    pub const API_TOKEN: &str = "TRIGGERLINE_API_TOKEN";
    pub const DATA_DIR: &str = "TRIGGERLINE_DATA_DIR";
    pub const SIGNING_SECRET: &str = "TRIGGERLINE_SIGNING_SECRET";
}

/// Where the service is, how to authenticate, and how to print.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the Triggerline API.
    #[arg(long, env = env::URL, default_value = "http://127.0.0.1:8080")]
    pub url: Url,
    /// Bearer token of the management API (the one `triggerline serve` accepts or printed).
    #[arg(long, value_name = "TOKEN", env = env::API_TOKEN, hide_env_values = true)]
    pub api_token: Option<Sensitive>,
    /// Print JSON (the API's own bodies, or one JSON object per line for `listen`) instead of
    /// tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The trigger catalog.
    Triggers {
        #[command(subcommand)]
        command: Triggers,
    },
    /// Create, inspect, change and delete subscriptions.
    #[command(alias = "subs")]
    Subscriptions {
        #[command(subcommand)]
        command: Subscriptions,
    },
    /// Check a JSONPath filter against an input or a trigger's example input.
    Filter {
        #[command(subcommand)]
        command: Filter,
    },
    /// Raise an invocation: a test (to every subscription, enabled or not) or a real one.
    Invoke(Invoke),
    /// List invocations, newest first, or show one with its attempts as a timeline.
    Status(Status),
    /// Receive a trigger's deliveries on 127.0.0.1: subscribe this receiver, print each delivery,
    /// verify its signature and answer as told.
    Listen(Listen),
}

#[derive(Debug, Subcommand)]
pub enum Triggers {
    /// Every trigger: id, name, type.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// One trigger with its description, schemas and examples.
    Show {
        #[command(flatten)]
        connection: Connection,
        /// Trigger id, e.g. idn:identity-created.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Subscriptions {
    /// Every subscription, or a trigger's.
    List {
        #[command(flatten)]
        connection: Connection,
        /// Only this trigger's subscriptions.
        #[arg(long)]
        trigger: Option<String>,
    },
    /// One subscription.
    Show {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
    /// Subscribe a webhook (or an EventBridge bus) to a trigger. Prints the signing secret, once.
    Create(Box<Create>),
    /// Change fields of a subscription (a JSON Patch of the fields given).
    Update(Box<Update>),
    /// Deliver to a subscription again.
    Enable {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
    /// Stop delivering real-time invocations to a subscription (tests still reach it).
    Disable {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
    /// Delete a subscription.
    Delete {
        #[command(flatten)]
        connection: Connection,
        id: String,
    },
}

/// HTTP dispatch modes, as the API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum DispatchMode {
    Sync,
    Async,
    Dynamic,
}

impl DispatchMode {
    pub fn as_api(self) -> &'static str {
        match self {
            DispatchMode::Sync => "SYNC",
            DispatchMode::Async => "ASYNC",
            DispatchMode::Dynamic => "DYNAMIC",
        }
    }
}

#[derive(Debug, Args)]
pub struct Create {
    #[command(flatten)]
    pub connection: Connection,
    /// The whole SubscriptionPostRequest as JSON (`-` for stdin) instead of the flags below.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["trigger", "name", "target", "eventbridge_account"])]
    pub from_file: Option<PathBuf>,
    /// Trigger to subscribe to.
    #[arg(long, required_unless_present = "from_file")]
    pub trigger: Option<String>,
    /// Name of the subscription.
    #[arg(long, required_unless_present = "from_file")]
    pub name: Option<String>,
    /// Webhook URL (an HTTP subscription).
    #[arg(long, value_name = "URL", required_unless_present_any = ["from_file", "eventbridge_account"])]
    pub target: Option<String>,
    /// How the webhook answers.
    #[arg(long, value_enum, ignore_case = true, default_value = "SYNC")]
    pub mode: DispatchMode,
    #[command(flatten)]
    pub fields: Fields,
    /// Send `Authorization: Bearer <TOKEN>` to the webhook.
    #[arg(long, conflicts_with = "basic_auth")]
    pub bearer_token: Option<Sensitive>,
    /// Send basic auth to the webhook, as USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub basic_auth: Option<Sensitive>,
    /// An EventBridge subscription: the AWS account (12 digits) of the bus.
    #[arg(long, requires = "eventbridge_region", conflicts_with = "target")]
    pub eventbridge_account: Option<String>,
    /// The bus's AWS region.
    #[arg(long)]
    pub eventbridge_region: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// Fields shared by create and update.
#[derive(Debug, Args)]
pub struct Fields {
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// JSONPath filter: deliver only when it selects something in the input.
    #[arg(long)]
    pub filter: Option<String>,
    /// How long a REQUEST_RESPONSE subscriber has to answer (ISO-8601, e.g. PT1H, or 10m, 1h,
    /// as `--delay` takes).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::to_iso)]
    pub deadline: Option<String>,
}

#[derive(Debug, Args)]
pub struct Update {
    #[command(flatten)]
    pub connection: Connection,
    pub id: String,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New webhook URL.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// New dispatch mode.
    #[arg(long, value_enum, ignore_case = true)]
    pub mode: Option<DispatchMode>,
    #[command(flatten)]
    pub fields: Fields,
    /// New bearer token sent to the webhook.
    #[arg(long)]
    pub bearer_token: Option<Sensitive>,
    /// A JSON Patch array to apply as is (`-` for stdin), after the flags' operations.
    #[arg(long, value_name = "FILE")]
    pub patch: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Filter {
    /// Whether FILTER parses and selects something in the input.
    Test {
        #[command(flatten)]
        connection: Connection,
        /// JSONPath, e.g. '$[?($.identity.type == "HUMAN")]'.
        filter: String,
        /// Use this trigger's example input.
        #[arg(long, required_unless_present = "input", conflicts_with = "input")]
        trigger: Option<String>,
        /// The input as a JSON file (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct Invoke {
    #[command(flatten)]
    pub connection: Connection,
    /// Trigger to invoke.
    pub trigger: String,
    /// The input as a JSON file (`-` for stdin); the trigger's example input when left out.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Many events: one input per line of this JSON Lines file (`-` for stdin), raised through
    /// `start-batch`, at most 100 starts and 1 MiB to a request.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["input", "test", "sync"])]
    pub inputs: Option<PathBuf>,
    /// A test invocation: reaches every subscription of the trigger, enabled or not.
    #[arg(long, conflicts_with_all = ["sync", "delay"])]
    pub test: bool,
    /// Wait for the subscribers' answers (REQUEST_RESPONSE); exit 4 unless all completed.
    #[arg(long)]
    pub sync: bool,
    /// Deliver later: a duration (10m, PT10M).
    #[arg(long, value_name = "DURATION", conflicts_with = "sync")]
    pub delay: Option<String>,
    /// With --test: only these subscriptions (repeatable).
    #[arg(long = "subscription", value_name = "ID", requires = "test")]
    pub subscriptions: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Status {
    #[command(flatten)]
    pub connection: Connection,
    /// An invocation id: show it with every attempt.
    pub id: Option<String>,
    /// Only this trigger's invocations.
    #[arg(long, conflicts_with = "id")]
    pub trigger: Option<String>,
    /// Only this subscription's invocations.
    #[arg(long, conflicts_with = "id")]
    pub subscription: Option<String>,
    /// How many to list (at most 250).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=250))]
    pub limit: u32,
    /// With an id: hold until it is finished, at most this long (20s, PT20S; up to the server's
    /// sync wait), e.g. after `invoke --sync` ran out of time.
    #[arg(long, value_name = "DURATION", requires = "id")]
    pub wait: Option<String>,
}

/// How `listen` answers REQUEST_RESPONSE deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListenMode {
    /// Answer with the output at once.
    Sync,
    /// Answer `{}` (acknowledged); complete through the callback with --complete-after.
    Async,
    /// Answer 200 with the output, or, with --complete-after, 202 `{}` and complete later.
    Dynamic,
}

impl ListenMode {
    pub fn dispatch(self) -> DispatchMode {
        match self {
            ListenMode::Sync => DispatchMode::Sync,
            ListenMode::Async => DispatchMode::Async,
            ListenMode::Dynamic => DispatchMode::Dynamic,
        }
    }
}

#[derive(Debug, Args)]
pub struct Listen {
    #[command(flatten)]
    pub connection: Connection,
    /// Trigger to receive, e.g. idn:access-request-pre-approval.
    pub trigger: String,
    /// How to answer.
    #[arg(long, value_enum, ignore_case = true, default_value = "sync")]
    pub mode: ListenMode,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Point this existing subscription at the receiver instead of the receiver's own.
    #[arg(long, value_name = "ID")]
    pub subscription: Option<String>,
    /// Name of the receiver's own subscription, created the first time and reused after.
    #[arg(long, default_value = "triggerline listen")]
    pub name: String,
    /// JSONPath filter of the subscription.
    #[arg(long)]
    pub filter: Option<String>,
    /// The output to answer (or complete) with, as a JSON file; the trigger's example output
    /// when left out.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// HTTP status to answer with (a non-2xx makes the attempt fail, to watch retries).
    #[arg(long, value_parser = clap::value_parser!(u16).range(100..=599))]
    pub status: Option<u16>,
    /// Wait this long before answering (past 10 s the attempt times out): 2s, 500ms, PT2S.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
    pub delay: Option<Duration>,
    /// async/dynamic: complete each invocation through its callback this long after answering.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
    pub complete_after: Option<Duration>,
    /// Signing secret (`whsec_…`) of a subscription created elsewhere, to verify signatures.
    #[arg(long, env = env::SIGNING_SECRET, hide_env_values = true)]
    pub signing_secret: Option<Sensitive>,
    /// Where the receiver remembers its subscriptions' signing secrets (`listen-secrets.json`).
    #[arg(long, env = env::DATA_DIR, default_value = "./.triggerline")]
    pub data_dir: PathBuf,
    /// Exit after this many deliveries (each answered, and completed when asked); at least 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Leave the subscription enabled at exit (by default it is disabled, so that real
    /// invocations do not pile up retries against a receiver that is gone).
    #[arg(long)]
    pub keep_enabled: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[test]
    fn debug_of_the_arguments_shows_no_credential() {
        for line in [
            "x subscriptions create --trigger t --name n --target http://h/ --api-token tok-1 --bearer-token tok-2",
            "x subscriptions create --trigger t --name n --target http://h/ --basic-auth user:pass-3",
            "x subscriptions update s1 --bearer-token tok-4",
            "x listen idn:t --signing-secret whsec_5",
        ] {
            let cli =
                Cli::try_parse_from(line.split(' ')).unwrap_or_else(|e| panic!("{line}: {e}"));
            let shown = format!("{cli:?}");
            for secret in ["tok-1", "tok-2", "pass-3", "tok-4", "whsec_5"] {
                assert!(!shown.contains(secret), "{line}: {shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    /// `--count 0` was taken as 1 (the count is checked after each delivery); it is refused
    /// with the values a `u64` cannot hold.
    #[test]
    fn listen_count_is_at_least_one() {
        for bad in ["0", "-1", "18446744073709551616", "1.5", ""] {
            let count = format!("--count={bad}");
            let err = Cli::try_parse_from(["x", "listen", "idn:t", &count]).expect_err(bad);
            assert!(err.to_string().contains("--count"), "{bad}: {err}");
        }
        let cli = Cli::try_parse_from(["x", "listen", "idn:t", "--count", "1"]).unwrap();
        let Command::Listen(listen) = cli.command else {
            panic!("not listen: {cli:?}")
        };
        assert_eq!(listen.count, Some(1));
    }
}
