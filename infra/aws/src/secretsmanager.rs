//! The one Secrets Manager call the functions make: `GetSecretValue` of the callback key, once,
//! at start, with the function's own role (`secretsmanager:GetSecretValue` on that one secret).
//!
//! Why not a dynamic reference in the template: CloudFormation would resolve the secret into an
//! environment variable, readable by anyone allowed `lambda:GetFunctionConfiguration`. Why not
//! `aws-sdk-secretsmanager`: its generated client is some hundred kilobytes of every bootstrap
//! that fetches the key, and the tightest one has about fifty to spare. Why not the Parameters
//! and Secrets Lambda Extension: a layer to pin and keep up to date, and nothing a test could run
//! against. So this is Secrets Manager's JSON protocol by hand (`POST /` with `X-Amz-Target`),
//! signed with the SDK's own SigV4 signer and sent through the SDK's own hyper connector: no code
//! that the binaries do not already carry, except these few functions, and it runs against moto
//! in the tests exactly as against AWS.

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::config::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::Value;

use crate::Clients;

/// The service-specific endpoint override of the standard AWS environment (an emulator), which
/// wins over `AWS_ENDPOINT_URL` as it does for the SDK clients.
const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_SECRETS_MANAGER";
/// One call, connection included; a start that cannot reach Secrets Manager fails and Lambda
/// starts the execution environment again on the next event.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Secrets Manager's service name, for the signature.
const SERVICE: &str = "secretsmanager";

/// A Secrets Manager call that did not return a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("no AWS credentials for Secrets Manager: {0}")]
    Credentials(String),
    #[error("Secrets Manager request failed: {0}")]
    Request(String),
    #[error("Secrets Manager answered {status}: {kind}")]
    Refused { status: u16, kind: String },
    #[error("Secrets Manager's answer is not what GetSecretValue returns: {0}")]
    Answer(String),
}

/// Secrets Manager over the process's AWS configuration (region, credentials, endpoint).
#[derive(Debug, Clone)]
pub struct SecretsManager {
    clients: Clients,
    endpoint: String,
    connector: SharedHttpConnector,
}

impl SecretsManager {
    /// The client for `clients`' region and credentials. The endpoint is
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else the configuration's endpoint override
    /// (`AWS_ENDPOINT_URL`, an emulator), else the regional one.
    pub fn new(clients: &Clients) -> SecretsManager {
        let config = clients.config();
        let region = config.region().map(|r| r.as_ref()).unwrap_or("us-east-1");
        let endpoint = std::env::var(ENDPOINT_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| config.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| regional_endpoint(region));
        // The SDK clients' own connector (same timeouts, pool and TLS roots): a second one
        // would parse the roots again at a function's start.
        let connector = clients.connector();
        SecretsManager {
            clients: clients.clone(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            connector,
        }
    }

    /// The `SecretString` of `secret_id` (an ARN or a name), current version.
    pub async fn secret_string(&self, secret_id: &str) -> Result<String, SecretsError> {
        let answer = self
            .call(
                "GetSecretValue",
                &serde_json::json!({ "SecretId": secret_id }),
            )
            .await?;
        match answer.get("SecretString") {
            Some(Value::String(text)) => Ok(text.clone()),
            _ => Err(SecretsError::Answer(
                "no SecretString (a binary secret?)".into(),
            )),
        }
    }

    /// One JSON-protocol call, `action` with `input`; the decoded answer. Public for the tests,
    /// which create their secrets with it (`CreateSecret`).
    pub async fn call(&self, action: &str, input: &Value) -> Result<Value, SecretsError> {
        let request = self.signed(action, input).await?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.connector.call(request))
            .await
            .map_err(|_| SecretsError::Request(format!("no answer within {CALL_TIMEOUT:?}")))?
            .map_err(|e| SecretsError::Request(e.to_string()))?;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(
            CALL_TIMEOUT,
            ByteStream::new(response.into_body()).collect(),
        )
        .await
        .map_err(|_| SecretsError::Request(format!("no answer within {CALL_TIMEOUT:?}")))?
        .map_err(|e| SecretsError::Request(e.to_string()))?
        .into_bytes();
        let json: Value = serde_json::from_slice(&body)
            .map_err(|e| SecretsError::Answer(format!("not JSON ({e})")))?;
        if (200..300).contains(&status) {
            return Ok(json);
        }
        // The error type only (`ResourceNotFoundException`, `AccessDeniedException`, ...):
        // messages can quote request data, and this one ends up in the function's logs.
        let kind = json
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| "an error".to_owned());
        Err(SecretsError::Refused { status, kind })
    }

    async fn signed(&self, action: &str, input: &Value) -> Result<HttpRequest, SecretsError> {
        let config = self.clients.config();
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| SecretsError::Credentials("no credentials provider".into()))?
            .provide_credentials()
            .await
            .map_err(|e| SecretsError::Credentials(e.to_string()))?;
        let identity = Identity::from(credentials);
        let region = config.region().map(|r| r.as_ref()).unwrap_or("us-east-1");
        let body = serde_json::to_vec(input).map_err(|e| SecretsError::Request(e.to_string()))?;
        let target = format!("secretsmanager.{action}");
        let uri = format!("{}/", self.endpoint);
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let signable = SignableRequest::new(
            "POST",
            uri.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| SecretsError::Request(e.to_string()))?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SecretsError::Request(e.to_string()))?
            .into();
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| SecretsError::Request(e.to_string()))?
            .into_parts();
        let mut request = HttpRequest::new(SdkBody::from(body));
        request
            .set_uri(uri.as_str())
            .map_err(|e| SecretsError::Request(e.to_string()))?;
        request
            .set_method("POST")
            .map_err(|e| SecretsError::Request(e.to_string()))?;
        let (signing_headers, _params) = instructions.into_parts();
        let invalid = |e: aws_smithy_runtime_api::http::HttpError| {
            SecretsError::Request(format!("invalid header: {e}"))
        };
        for (name, value) in headers {
            request
                .headers_mut()
                .try_insert(name, value.to_owned())
                .map_err(invalid)?;
        }
        for header in signing_headers {
            request
                .headers_mut()
                .try_insert(header.name(), header.value().to_owned())
                .map_err(invalid)?;
        }
        Ok(request)
    }
}

/// Secrets Manager's public endpoint in `region` (China's regions are in their own domain).
fn regional_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://secretsmanager.{region}.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regional_endpoints() {
        assert_eq!(
            regional_endpoint("eu-west-1"),
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            regional_endpoint("cn-north-1"),
            "https://secretsmanager.cn-north-1.amazonaws.com.cn"
        );
    }
}
