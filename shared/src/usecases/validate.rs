//! Validation shared by create, replace and patch: wire config → domain target.

use url::Url;

use crate::Error;
use crate::limits::{MAX_CREDENTIAL_BYTES, MAX_DESCRIPTION_CHARS, MAX_URL_BYTES};
use crate::model::{
    DispatchMode, EventBridgeTarget, HttpAuth, HttpTarget, SubscriptionType, Target,
};
use crate::secrets::{REDACTED, Secret};
use crate::wire::{EventBridgeConfig, HttpAuthenticationType, HttpConfig};

/// Every AWS region EventBridge runs in (commercial, GovCloud, China, European Sovereign Cloud).
pub const AWS_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Builds the delivery target from the `type` and config objects of a request. `previous` is the
/// stored target on an update: a secret the request leaves out or sends as null is kept from it,
/// and so are the URL's credentials sent back redacted (`https://user:*****@host/`), but only
/// while the URL keeps its origin (scheme, host and port): stored credentials are never sent to
/// another origin unless the request sends them again (then `httpConfig.url` is refused).
pub fn target(
    kind: SubscriptionType,
    http: Option<HttpConfig>,
    event_bridge: Option<EventBridgeConfig>,
    previous: Option<&Target>,
) -> Result<Target, Error> {
    match kind {
        SubscriptionType::Http => {
            if event_bridge.is_some() {
                return Err(Error::invalid(
                    "eventBridgeConfig",
                    "must be left out when type is HTTP",
                ));
            }
            let http =
                http.ok_or_else(|| Error::invalid("httpConfig", "is required when type is HTTP"))?;
            let previous = match previous {
                Some(Target::Http(h)) => Some(h),
                _ => None,
            };
            Ok(Target::Http(http_target(http, previous)?))
        }
        SubscriptionType::Eventbridge => {
            if let Some(http) = http {
                let why = if http.http_dispatch_mode == DispatchMode::Async {
                    "must be left out when type is EVENTBRIDGE"
                } else {
                    "EVENTBRIDGE subscriptions are ASYNC only (the event carries the callback URL \
                     and secret); leave httpConfig out"
                };
                return Err(Error::invalid("httpConfig", why));
            }
            let eb = event_bridge.ok_or_else(|| {
                Error::invalid("eventBridgeConfig", "is required when type is EVENTBRIDGE")
            })?;
            Ok(Target::EventBridge(event_bridge_target(eb)?))
        }
        other => Err(Error::invalid(
            "type",
            format!(
                "{} subscriptions are not supported; use HTTP or EVENTBRIDGE",
                other.as_str()
            ),
        )),
    }
}

/// A webhook URL as an error may quote it: without the credentials its userinfo may hold,
/// which every response redacts. One that does not parse is not quoted when it has an `@`.
fn quoted_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(_) => format!("`{}`", crate::secrets::redacted_url(url)),
        Err(_) if url.contains('@') => "the URL (not quoted: it may hold credentials)".to_owned(),
        Err(_) => format!("`{url}`"),
    }
}

fn http_target(http: HttpConfig, previous: Option<&HttpTarget>) -> Result<HttpTarget, Error> {
    // The URL parser drops tabs and line breaks, so the text stored and shown would not be the
    // URL delivered to. (One stored before this check is kept by an update that sends it
    // back, as every bound's is.)
    if http.url.chars().any(char::is_control) && previous.is_none_or(|p| p.url != http.url) {
        return Err(Error::invalid(
            "httpConfig.url",
            "holds a control character (a line break or tab); send the URL alone",
        ));
    }
    let mut url = Url::parse(&http.url).map_err(|e| {
        Error::invalid(
            "httpConfig.url",
            format!("{} is not a URL: {e}", quoted_url(&http.url)),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "httpConfig.url",
            format!(
                "{} must be an http or https URL with a host",
                quoted_url(&http.url)
            ),
        ));
    }
    // Nothing listens on port 0: every delivery would fail to connect. (A URL stored before
    // this check is kept by an update that sends it back, as every bound's is.)
    if url.port() == Some(0) && previous.is_none_or(|p| p.url != http.url) {
        return Err(Error::invalid(
            "httpConfig.url",
            format!(
                "{} has port 0; give the port the webhook listens on",
                quoted_url(&http.url)
            ),
        ));
    }
    let previous_url = previous.and_then(|p| Url::parse(&p.url).ok());
    let same_origin = previous_url
        .as_ref()
        .is_some_and(|p| p.origin() == url.origin());
    let url_text = restore_userinfo(&mut url, previous_url.as_ref().filter(|_| same_origin))?
        .unwrap_or(http.url);
    let stored_url = previous.map(|p| p.url.as_str());
    at_most_bytes("httpConfig.url", &url_text, MAX_URL_BYTES, stored_url)?;
    let previous = previous.map(|p| &p.auth);
    // The secret field a stored credential was kept for, if one was.
    let mut kept_for = None;
    let auth = match http
        .http_authentication_type
        .unwrap_or(HttpAuthenticationType::NoAuth)
    {
        HttpAuthenticationType::NoAuth => HttpAuth::None,
        HttpAuthenticationType::BasicAuth => {
            let config = http
                .basic_auth_config
                .unwrap_or(crate::wire::BasicAuthConfig {
                    user_name: None,
                    password: None,
                });
            let user_name = config.user_name.filter(|u| !u.is_empty()).ok_or_else(|| {
                Error::invalid(
                    "httpConfig.basicAuthConfig.userName",
                    "is required when httpAuthenticationType is BASIC_AUTH",
                )
            })?;
            let (stored_user, kept) = match previous {
                Some(HttpAuth::Basic {
                    user_name,
                    password,
                }) => (Some(user_name.as_str()), Some(password.clone())),
                _ => (None, None),
            };
            credential(
                "httpConfig.basicAuthConfig.userName",
                &user_name,
                stored_user,
            )?;
            // RFC 7617: the receiver splits `user:password` at the first colon, so a user name
            // with one would reach it as another user with another password.
            if user_name.contains(':') && stored_user != Some(user_name.as_str()) {
                return Err(Error::invalid(
                    "httpConfig.basicAuthConfig.userName",
                    "must not contain `:` (basic auth sends `user:password`, split at the first \
                     colon)",
                ));
            }
            if let Some(sent) = &config.password {
                credential(
                    "httpConfig.basicAuthConfig.password",
                    sent.expose(),
                    kept.as_ref().map(Secret::expose),
                )?;
            }
            if config.password.is_none() && kept.is_some() {
                kept_for = Some("httpConfig.basicAuthConfig.password");
            }
            let password = config.password.or(kept).ok_or_else(|| {
                Error::invalid(
                    "httpConfig.basicAuthConfig.password",
                    "is required when httpAuthenticationType is BASIC_AUTH",
                )
            })?;
            HttpAuth::Basic {
                user_name,
                password,
            }
        }
        HttpAuthenticationType::BearerToken => {
            let kept = match previous {
                Some(HttpAuth::Bearer { token }) => Some(token.clone()),
                _ => None,
            };
            let sent = http.bearer_token_auth_config.and_then(|c| c.bearer_token);
            if let Some(sent) = &sent {
                credential(
                    "httpConfig.bearerTokenAuthConfig.bearerToken",
                    sent.expose(),
                    kept.as_ref().map(Secret::expose),
                )?;
            }
            if sent.is_none() && kept.is_some() {
                kept_for = Some("httpConfig.bearerTokenAuthConfig.bearerToken");
            }
            let token = sent.or(kept).filter(|t| !t.is_empty()).ok_or_else(|| {
                Error::invalid(
                    "httpConfig.bearerTokenAuthConfig.bearerToken",
                    "is required when httpAuthenticationType is BEARER_TOKEN",
                )
            })?;
            HttpAuth::Bearer { token }
        }
    };
    if let Some(field) = kept_for.filter(|_| !same_origin) {
        let from =
            previous_url.map_or_else(|| "?".to_owned(), |p| p.origin().ascii_serialization());
        return Err(Error::invalid(
            "httpConfig.url",
            format!(
                "moves the subscription from {from} to {}; its stored credentials are never sent \
                 to another origin: send {field} again in the same request, or set \
                 httpAuthenticationType to NO_AUTH",
                url.origin().ascii_serialization()
            ),
        ));
    }
    Ok(HttpTarget {
        url: url_text,
        mode: http.http_dispatch_mode,
        auth,
    })
}

/// Puts the stored userinfo back into `url` where the request sent it back redacted, as a
/// GET answered it (and as a JSON Patch of another field leaves it). `previous` is the stored
/// URL, given only when `url` keeps its origin. `Ok(None)`: nothing was redacted, the request's
/// text stands as sent.
fn restore_userinfo(url: &mut Url, previous: Option<&Url>) -> Result<Option<String>, Error> {
    let redacted_password = url.password() == Some(REDACTED);
    let redacted_user = url.password().is_none() && url.username() == REDACTED;
    if !redacted_password && !redacted_user {
        return Ok(None);
    }
    let restorable = previous.filter(|p| {
        if redacted_password {
            p.password().is_some() && p.username() == url.username()
        } else {
            p.password().is_none() && !p.username().is_empty()
        }
    });
    let Some(previous) = restorable else {
        return Err(Error::invalid(
            "httpConfig.url",
            format!(
                "carries the redacted credentials `{REDACTED}`; send the URL's credentials again \
                 (stored ones are kept only for the same user name, scheme, host and port)"
            ),
        ));
    };
    // Both setters fail only for URLs without a host, which were refused above.
    let _ = url.set_username(previous.username());
    let _ = url.set_password(previous.password());
    Ok(Some(url.to_string()))
}

fn event_bridge_target(eb: EventBridgeConfig) -> Result<EventBridgeTarget, Error> {
    if eb.aws_account.len() != 12 || !eb.aws_account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            "eventBridgeConfig.awsAccount",
            format!("`{}` is not a 12-digit AWS account id", eb.aws_account),
        ));
    }
    if !AWS_REGIONS.contains(&eb.aws_region.as_str()) {
        return Err(Error::invalid(
            "eventBridgeConfig.awsRegion",
            format!("`{}` is not an AWS region (e.g. us-east-1)", eb.aws_region),
        ));
    }
    Ok(EventBridgeTarget {
        aws_account: eb.aws_account,
        aws_region: eb.aws_region,
    })
}

/// A subscription's `description`: at most [`MAX_DESCRIPTION_CHARS`] characters, unless it is
/// the one already `stored`.
pub fn description(
    field: &str,
    description: Option<String>,
    stored: Option<&str>,
) -> Result<Option<String>, Error> {
    if let Some(text) = &description {
        let chars = text.chars().count();
        if chars > MAX_DESCRIPTION_CHARS && stored != Some(text.as_str()) {
            return Err(Error::invalid(
                field,
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters (has {chars})"),
            ));
        }
    }
    Ok(description)
}

/// Refuses `value` over `max` bytes, naming `field`, unless it is the value already `stored`:
/// a subscription saved before a bound existed keeps what it has and can still be changed in
/// its other fields (a JSON Patch sends every field back).
fn at_most_bytes(field: &str, value: &str, max: usize, stored: Option<&str>) -> Result<(), Error> {
    if value.len() > max && stored != Some(value) {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} bytes (has {})", value.len()),
        ));
    }
    Ok(())
}

/// A webhook credential: at most [`MAX_CREDENTIAL_BYTES`], and no control character (tab
/// aside). A bearer token goes into the `Authorization` header as it is, where a line break
/// cannot go, so every delivery would fail building it; basic credentials are base64-encoded,
/// but RFC 7617 rules control characters out of them, and receivers refuse them. The message
/// never quotes the value. A `stored` value sent back unchanged is kept.
fn credential(field: &str, value: &str, stored: Option<&str>) -> Result<(), Error> {
    at_most_bytes(field, value, MAX_CREDENTIAL_BYTES, stored)?;
    if stored != Some(value) && value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A subscription name: present and not blank.
pub fn name(field: &str, name: String) -> Result<String, Error> {
    if name.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.chars().count() > 255 {
        return Err(Error::invalid(field, "must be at most 255 characters"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> HttpConfig {
        HttpConfig {
            url: url.into(),
            http_dispatch_mode: DispatchMode::Sync,
            http_authentication_type: None,
            basic_auth_config: None,
            bearer_token_auth_config: None,
        }
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::Invalid { field, .. } => field,
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn contradictory_or_missing_config_names_the_field() {
        let eb = EventBridgeConfig {
            aws_account: "123456789012".into(),
            aws_region: "us-east-1".into(),
        };
        let cases = [
            (
                target(SubscriptionType::Http, None, None, None),
                "httpConfig",
            ),
            (
                target(
                    SubscriptionType::Http,
                    Some(http("https://x")),
                    Some(eb.clone()),
                    None,
                ),
                "eventBridgeConfig",
            ),
            (
                target(
                    SubscriptionType::Eventbridge,
                    Some(http("https://x")),
                    Some(eb.clone()),
                    None,
                ),
                "httpConfig",
            ),
            (
                target(SubscriptionType::Eventbridge, None, None, None),
                "eventBridgeConfig",
            ),
            (target(SubscriptionType::Inline, None, None, None), "type"),
            (
                target(SubscriptionType::Http, Some(http("ftp://x")), None, None),
                "httpConfig.url",
            ),
            (
                target(SubscriptionType::Http, Some(http("not a url")), None, None),
                "httpConfig.url",
            ),
        ];
        for (result, field) in cases {
            assert_eq!(field_of(result.unwrap_err()), field);
        }
    }

    #[test]
    fn event_bridge_account_and_region_are_checked() {
        let bad_account = EventBridgeConfig {
            aws_account: "12345".into(),
            aws_region: "us-east-1".into(),
        };
        let bad_region = EventBridgeConfig {
            aws_account: "123456789012".into(),
            aws_region: "moon-1".into(),
        };
        assert_eq!(
            field_of(
                target(SubscriptionType::Eventbridge, None, Some(bad_account), None).unwrap_err()
            ),
            "eventBridgeConfig.awsAccount"
        );
        assert_eq!(
            field_of(
                target(SubscriptionType::Eventbridge, None, Some(bad_region), None).unwrap_err()
            ),
            "eventBridgeConfig.awsRegion"
        );
    }

    #[test]
    fn a_left_out_secret_is_kept_from_the_stored_target() {
        let stored = Target::Http(HttpTarget {
            url: "https://x".into(),
            mode: DispatchMode::Sync,
            auth: HttpAuth::Bearer {
                token: "t0ken".into(),
            },
        });
        // Same origin (another path): a new origin needs the secret again (test below).
        let mut update = http("https://x/moved");
        update.http_authentication_type = Some(HttpAuthenticationType::BearerToken);
        let Target::Http(h) = target(
            SubscriptionType::Http,
            Some(update.clone()),
            None,
            Some(&stored),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            h.auth,
            HttpAuth::Bearer {
                token: "t0ken".into()
            }
        );
        assert_eq!(
            field_of(target(SubscriptionType::Http, Some(update), None, None).unwrap_err()),
            "httpConfig.bearerTokenAuthConfig.bearerToken"
        );
    }

    fn stored(url: &str, auth: HttpAuth) -> Target {
        Target::Http(HttpTarget {
            url: url.into(),
            mode: DispatchMode::Sync,
            auth,
        })
    }

    /// An update of the URL and auth type that sends no secret.
    fn update(url: &str, kind: HttpAuthenticationType) -> HttpConfig {
        let basic_auth_config =
            (kind == HttpAuthenticationType::BasicAuth).then(|| crate::wire::BasicAuthConfig {
                user_name: Some("u".into()),
                password: None,
            });
        HttpConfig {
            http_authentication_type: Some(kind),
            basic_auth_config,
            ..http(url)
        }
    }

    fn http_of(result: Result<Target, Error>) -> HttpTarget {
        match result {
            Ok(Target::Http(h)) => h,
            other => panic!("not an HTTP target: {other:?}"),
        }
    }

    fn basic(user: &str, password: &str) -> HttpConfig {
        HttpConfig {
            http_authentication_type: Some(HttpAuthenticationType::BasicAuth),
            basic_auth_config: Some(crate::wire::BasicAuthConfig {
                user_name: Some(user.into()),
                password: Some(password.into()),
            }),
            ..http("https://a.example.com/hook")
        }
    }

    fn bearer(token: &str) -> HttpConfig {
        HttpConfig {
            http_authentication_type: Some(HttpAuthenticationType::BearerToken),
            bearer_token_auth_config: Some(crate::wire::BearerTokenAuthConfig {
                bearer_token: Some(token.into()),
            }),
            ..http("https://a.example.com/hook")
        }
    }

    fn checked(config: HttpConfig, previous: Option<&Target>) -> Result<Target, Error> {
        target(SubscriptionType::Http, Some(config), None, previous)
    }

    #[test]
    fn each_webhook_field_is_held_to_its_bound_and_named() {
        // A URL of exactly the bound, and one byte over it.
        let at = format!("https://a.example.com/{}", "p".repeat(MAX_URL_BYTES - 22));
        assert_eq!(at.len(), MAX_URL_BYTES);
        assert!(checked(http(&at), None).is_ok());
        let over = format!("{at}q");
        assert_eq!(
            field_of(checked(http(&over), None).unwrap_err()),
            "httpConfig.url"
        );
        let at = "c".repeat(MAX_CREDENTIAL_BYTES);
        let over = "c".repeat(MAX_CREDENTIAL_BYTES + 1);
        let huge = "c".repeat(1024 * 1024);
        assert!(checked(basic(&at, &at), None).is_ok());
        assert!(checked(bearer(&at), None).is_ok());
        for value in [&over, &huge] {
            assert_eq!(
                field_of(checked(basic(value, "pw"), None).unwrap_err()),
                "httpConfig.basicAuthConfig.userName"
            );
            assert_eq!(
                field_of(checked(basic("u", value), None).unwrap_err()),
                "httpConfig.basicAuthConfig.password"
            );
            assert_eq!(
                field_of(checked(bearer(value), None).unwrap_err()),
                "httpConfig.bearerTokenAuthConfig.bearerToken"
            );
        }
        // Multi-byte characters count as the bytes they take.
        let wide = "é".repeat(MAX_CREDENTIAL_BYTES / 2 + 1);
        assert!(checked(bearer(&wide), None).is_err());
    }

    /// Each was stored before: a bearer token with a line break then failed every delivery (no
    /// header holds one), and a user name with a colon reached the receiver as another user.
    #[test]
    fn credentials_no_header_can_carry_are_refused_and_named() {
        let token = "httpConfig.bearerTokenAuthConfig.bearerToken";
        let user = "httpConfig.basicAuthConfig.userName";
        let password = "httpConfig.basicAuthConfig.password";
        for bad in ["a\r\nX-Evil: 1", "a\nb", "\0", "a\u{7f}"] {
            let err = checked(bearer(bad), None).unwrap_err();
            assert!(!err.to_string().contains(bad), "never quoted: {err}");
            assert_eq!(field_of(err), token, "{bad:?}");
            assert_eq!(field_of(checked(basic(bad, "pw"), None).unwrap_err()), user);
            assert_eq!(
                field_of(checked(basic("u", bad), None).unwrap_err()),
                password
            );
        }
        assert_eq!(
            field_of(checked(basic("a:b", "pw"), None).unwrap_err()),
            user
        );
        // A tab, a colon in the password and any printable text are fine.
        assert!(checked(bearer("a\tb"), None).is_ok());
        assert!(checked(basic("ü ser", "p:w\té"), None).is_ok());
        assert!(checked(bearer("abc-._~+/=é"), None).is_ok());
    }

    #[test]
    fn a_url_with_port_zero_is_refused() {
        for url in ["http://127.0.0.1:0/hook", "https://a.example.com:0/"] {
            assert_eq!(
                field_of(checked(http(url), None).unwrap_err()),
                "httpConfig.url"
            );
        }
        assert!(checked(http("https://a.example.com:1/"), None).is_ok());
        assert!(checked(http("https://a.example.com:65535/"), None).is_ok());
    }

    #[test]
    fn a_description_is_held_to_its_characters_not_its_bytes() {
        let at = "é".repeat(MAX_DESCRIPTION_CHARS);
        assert_eq!(
            description("description", Some(at.clone()), None).unwrap(),
            Some(at)
        );
        let over = "e".repeat(MAX_DESCRIPTION_CHARS + 1);
        let err = description("description", Some(over), None).unwrap_err();
        assert!(
            err.to_string().contains("2000 characters (has 2001)"),
            "{err}"
        );
        assert_eq!(description("description", None, None).unwrap(), None);
    }

    #[test]
    fn values_stored_before_the_bounds_are_kept_by_an_update() {
        // What a JSON Patch of another field sends back: the stored URL, user name and
        // description as they are; the secrets left out.
        let long_url = format!("https://a.example.com/{}", "p".repeat(MAX_URL_BYTES));
        let long_user = "u".repeat(MAX_CREDENTIAL_BYTES + 1);
        let previous = stored(
            &long_url,
            HttpAuth::Basic {
                user_name: long_user.clone(),
                password: "p".repeat(MAX_CREDENTIAL_BYTES + 1).into(),
            },
        );
        let patched = HttpConfig {
            http_authentication_type: Some(HttpAuthenticationType::BasicAuth),
            basic_auth_config: Some(crate::wire::BasicAuthConfig {
                user_name: Some(long_user),
                password: None,
            }),
            ..http(&long_url)
        };
        assert!(checked(patched, Some(&previous)).is_ok());
        let long_text = "d".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert!(description("description", Some(long_text.clone()), Some(&long_text)).is_ok());
        // A new value over the bound is refused all the same.
        let other = format!("{long_url}x");
        assert_eq!(
            field_of(checked(http(&other), Some(&previous)).unwrap_err()),
            "httpConfig.url"
        );
    }

    #[test]
    fn stored_credentials_are_not_kept_for_another_origin() {
        let bearer = stored(
            "https://a.example.com/hook",
            HttpAuth::Bearer {
                token: "t0ken".into(),
            },
        );
        let basic = stored(
            "https://a.example.com/hook",
            HttpAuth::Basic {
                user_name: "u".into(),
                password: "pw".into(),
            },
        );
        let to = |url: &str, kind, previous: &Target| {
            target(
                SubscriptionType::Http,
                Some(update(url, kind)),
                None,
                Some(previous),
            )
        };
        // Another host, scheme or port, credentials left out: refused, naming the URL.
        for url in [
            "https://b.example.com/hook",
            "http://a.example.com/hook",
            "https://a.example.com:8443/hook",
        ] {
            let err = to(url, HttpAuthenticationType::BearerToken, &bearer).unwrap_err();
            assert_eq!(field_of(err), "httpConfig.url", "{url}");
            let err = to(url, HttpAuthenticationType::BasicAuth, &basic);
            let message = err.unwrap_err().to_string();
            assert!(message.starts_with("httpConfig.url: moves"), "{message}");
            assert!(message.contains("basicAuthConfig.password"), "{message}");
            assert!(!message.contains("pw"), "{message}");
        }
        // Same origin, another path: kept.
        let kept = http_of(to(
            "https://a.example.com/other",
            HttpAuthenticationType::BearerToken,
            &bearer,
        ));
        assert_eq!(
            kept.auth,
            HttpAuth::Bearer {
                token: "t0ken".into()
            }
        );
        // Sent again with the move, or dropped with NO_AUTH: accepted.
        let mut again = update(
            "https://b.example.com/hook",
            HttpAuthenticationType::BearerToken,
        );
        again.bearer_token_auth_config = Some(crate::wire::BearerTokenAuthConfig {
            bearer_token: Some("n3w".into()),
        });
        let moved = http_of(target(
            SubscriptionType::Http,
            Some(again),
            None,
            Some(&bearer),
        ));
        assert_eq!(
            moved.auth,
            HttpAuth::Bearer {
                token: "n3w".into()
            }
        );
        let dropped = http_of(to(
            "https://b.example.com/hook",
            HttpAuthenticationType::NoAuth,
            &bearer,
        ));
        assert_eq!(dropped.auth, HttpAuth::None);
    }

    #[test]
    fn redacted_url_credentials_are_restored_only_on_the_same_origin() {
        let previous = stored("https://u:s3cret@a.example.com/hook", HttpAuth::None);
        let to = |url: &str| {
            target(
                SubscriptionType::Http,
                Some(http(url)),
                None,
                Some(&previous),
            )
        };
        assert_eq!(
            http_of(to("https://u:*****@a.example.com/moved")).url,
            "https://u:s3cret@a.example.com/moved"
        );
        for url in [
            "https://u:*****@b.example.com/hook",
            "https://other:*****@a.example.com/hook",
        ] {
            assert_eq!(field_of(to(url).unwrap_err()), "httpConfig.url", "{url}");
        }
        // Nothing to restore from on a create.
        assert_eq!(
            field_of(
                target(
                    SubscriptionType::Http,
                    Some(http("https://u:*****@a.example.com/")),
                    None,
                    None
                )
                .unwrap_err()
            ),
            "httpConfig.url"
        );
        // New credentials in the URL are taken as sent, on any origin.
        assert_eq!(
            http_of(to("https://v:n3w@b.example.com/hook")).url,
            "https://v:n3w@b.example.com/hook"
        );
        let token_only = stored("https://ghp_abc@a.example.com/hook", HttpAuth::None);
        let restored = http_of(target(
            SubscriptionType::Http,
            Some(http("https://*****@a.example.com/hook")),
            None,
            Some(&token_only),
        ));
        assert_eq!(restored.url, "https://ghp_abc@a.example.com/hook");
    }

    #[test]
    fn debug_of_a_request_shows_no_secret() {
        let mut config = update(
            "https://u:url-pw@a.example.com/",
            HttpAuthenticationType::BasicAuth,
        );
        config.basic_auth_config = Some(crate::wire::BasicAuthConfig {
            user_name: Some("u".into()),
            password: Some("basic-pw".into()),
        });
        config.bearer_token_auth_config = Some(crate::wire::BearerTokenAuthConfig {
            bearer_token: Some("bearer-tok".into()),
        });
        let text = format!("{config:?}");
        for secret in ["url-pw", "basic-pw", "bearer-tok"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
