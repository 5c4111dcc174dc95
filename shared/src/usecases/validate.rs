//! Validation shared by create, replace and patch: wire config → domain target.

use url::Url;

use crate::Error;
use crate::model::{
    DispatchMode, EventBridgeTarget, HttpAuth, HttpTarget, SubscriptionType, Target,
};
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
/// stored target on an update: a secret the request leaves out or sends as null is kept from it.
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
            let previous_auth = match previous {
                Some(Target::Http(h)) => Some(&h.auth),
                _ => None,
            };
            Ok(Target::Http(http_target(http, previous_auth)?))
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

fn http_target(http: HttpConfig, previous: Option<&HttpAuth>) -> Result<HttpTarget, Error> {
    let url = Url::parse(&http.url).map_err(|e| {
        Error::invalid(
            "httpConfig.url",
            format!("`{}` is not a URL: {e}", http.url),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "httpConfig.url",
            format!("`{}` must be an http or https URL with a host", http.url),
        ));
    }
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
            let kept = match previous {
                Some(HttpAuth::Basic { password, .. }) => Some(password.clone()),
                _ => None,
            };
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
            let token = http
                .bearer_token_auth_config
                .and_then(|c| c.bearer_token)
                .or(kept)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Error::invalid(
                        "httpConfig.bearerTokenAuthConfig.bearerToken",
                        "is required when httpAuthenticationType is BEARER_TOKEN",
                    )
                })?;
            HttpAuth::Bearer { token }
        }
    };
    Ok(HttpTarget {
        url: http.url,
        mode: http.http_dispatch_mode,
        auth,
    })
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
        let mut update = http("https://y");
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
}
