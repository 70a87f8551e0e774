//! Connecting like kubectl: `--kubeconfig`, else `KUBECONFIG` (a list merged first-wins, missing
//! files skipped), else `~/.kube/config`; `--context/--cluster/--user` must name entries that
//! exist (never a silent fallback); impersonation and the request timeout apply; exec auth
//! plugins work through kube's loader.

use std::path::{Path, PathBuf};

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::Error;

/// How to reach the cluster: kubectl's connection flags as plain data (built from the CLI's
/// `KubeFlags`, or by hand in tests and benchmarks).
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--as`.
    pub as_user: Option<String>,
    /// `--as-group`.
    pub as_group: Vec<String>,
    /// `--as-uid`.
    pub as_uid: Option<String>,
    /// `--request-timeout` (`None` or zero: no timeout).
    pub request_timeout: Option<Duration>,
}

/// A client and what it points at.
#[derive(Clone)]
pub struct Connection {
    /// The client.
    pub client: kube::Client,
    /// Context name used.
    pub context: String,
    /// API server URL.
    pub server: String,
    /// The context's default namespace.
    pub default_namespace: String,
}

impl Connection {
    /// `context admin (https://127.0.0.1:6443)`.
    pub fn describe(&self) -> String {
        format!("context `{}` ({})", self.context, self.server)
    }
}

fn kubeconfig_paths(flags: &ConnectOptions) -> Result<Vec<PathBuf>, Error> {
    if let Some(p) = &flags.kubeconfig {
        if !p.exists() {
            return Err(Error::KubeconfigMissing(p.clone()));
        }
        return Ok(vec![p.clone()]);
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return Ok(std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty() && p.exists())
            .collect());
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    Ok(vec![home.join(".kube").join("config")]
        .into_iter()
        .filter(|p| p.exists())
        .collect())
}

/// Reads and merges the kubeconfig files kubectl would read.
pub fn load_kubeconfig(flags: &ConnectOptions) -> Result<Kubeconfig, Error> {
    let paths = kubeconfig_paths(flags)?;
    if paths.is_empty() {
        return Err(Error::NoKubeconfig);
    }
    let mut merged = Kubeconfig::default();
    for p in &paths {
        let kc = read(p)?;
        merged = merged.merge(kc).map_err(Error::KubeconfigMerge)?;
    }
    Ok(merged)
}

fn read(p: &Path) -> Result<Kubeconfig, Error> {
    Kubeconfig::read_from(p).map_err(|source| Error::KubeconfigRead {
        path: p.to_owned(),
        source,
    })
}

fn check_name(kind: &'static str, wanted: Option<&String>, have: Vec<&str>) -> Result<(), Error> {
    match wanted {
        Some(w) if !have.contains(&w.as_str()) => Err(Error::UnknownEntry {
            kind,
            name: w.clone(),
            known: have.into_iter().map(str::to_owned).collect(),
        }),
        _ => Ok(()),
    }
}

/// Validates the names asked for, so an unknown one is an error and not a fallback.
fn check_names(kc: &Kubeconfig, flags: &ConnectOptions) -> Result<String, Error> {
    check_name(
        "context",
        flags.context.as_ref(),
        kc.contexts.iter().map(|c| c.name.as_str()).collect(),
    )?;
    check_name(
        "cluster",
        flags.cluster.as_ref(),
        kc.clusters.iter().map(|c| c.name.as_str()).collect(),
    )?;
    check_name(
        "user",
        flags.user.as_ref(),
        kc.auth_infos.iter().map(|c| c.name.as_str()).collect(),
    )?;
    let context = flags.context.clone().or_else(|| kc.current_context.clone());
    context.ok_or(Error::NoContext)
}

/// Builds a client from kubectl-style flags.
pub async fn connect(flags: &ConnectOptions) -> Result<Connection, Error> {
    let kc = load_kubeconfig(flags)?;
    let context = check_names(&kc, flags)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        cluster: flags.cluster.clone(),
        user: flags.user.clone(),
    };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|source| Error::Context {
            context: context.clone(),
            source,
        })?;
    // Retries are ours (bounded, with Retry-After; see `retry`), not the client's.
    config.default_retry = false;
    if let Some(user) = &flags.as_user {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !flags.as_group.is_empty() {
        config.auth_info.impersonate_groups = Some(flags.as_group.clone());
    }
    if let Some(uid) = &flags.as_uid {
        config.auth_info.impersonate_uid = Some(uid.clone());
    }
    if let Some(t) = flags.request_timeout.filter(|t| !t.is_zero()) {
        config.connect_timeout = Some(t);
        config.read_timeout = Some(t);
        config.write_timeout = Some(t);
    }
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|source| Error::Client {
        context: context.clone(),
        source,
    })?;
    Ok(Connection {
        client,
        context,
        server,
        default_namespace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::error::{Class, Classify};

    const KC: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: tb
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- {name: admin, user: {token: t}}
contexts:
- {name: admin, context: {cluster: tb, user: admin}}
current-context: admin
"#;

    fn flags(context: Option<&str>, user: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            context: context.map(str::to_owned),
            user: user.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn unknown_context_or_user_is_an_error_listing_what_exists() {
        let kc = Kubeconfig::from_yaml(KC).unwrap();
        assert_eq!(check_names(&kc, &flags(None, None)).unwrap(), "admin");
        let err = check_names(&kc, &flags(Some("prod"), None)).unwrap_err();
        assert_eq!(err.to_string(), "context `prod` is not in the kubeconfig");
        assert_eq!(err.hints(), ["known contexts: admin"]);
        assert_eq!(err.class(), Class::Usage);
        assert!(check_names(&kc, &flags(None, Some("root"))).is_err());
    }

    #[test]
    fn missing_kubeconfig_flag_file_is_a_usage_error() {
        let f = ConnectOptions {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            ..Default::default()
        };
        assert_eq!(kubeconfig_paths(&f).unwrap_err().class(), Class::Usage);
    }
}
