//! Connecting like kubectl: `--kubeconfig`, else `KUBECONFIG` (a list merged first-wins, missing
//! files skipped), else `~/.kube/config`; `--context/--cluster/--user` must name entries that
//! exist (never a silent fallback); impersonation and the request timeout apply; exec auth
//! plugins work through kube's loader.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::{cli::KubeFlags, exit::MeshError};

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

fn kubeconfig_paths(flags: &KubeFlags) -> Result<Vec<PathBuf>, MeshError> {
    if let Some(p) = &flags.kubeconfig {
        if !p.exists() {
            return Err(MeshError::usage(anyhow::anyhow!(
                "kubeconfig `{}` does not exist",
                p.display()
            ))
            .hint("pass an existing file to --kubeconfig"));
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
pub fn load_kubeconfig(flags: &KubeFlags) -> Result<Kubeconfig, MeshError> {
    let paths = kubeconfig_paths(flags)?;
    if paths.is_empty() {
        return Err(MeshError::usage(anyhow::anyhow!("no kubeconfig found"))
            .hint("set KUBECONFIG or pass --kubeconfig; for a local test cluster run `cargo run -p mesh-testbed -- up --istio`"));
    }
    let mut merged = Kubeconfig::default();
    for p in &paths {
        let kc = read(p)?;
        merged = merged.merge(kc).map_err(|e| {
            MeshError::usage(anyhow::Error::new(e).context("cannot merge the kubeconfig files"))
        })?;
    }
    Ok(merged)
}

fn read(p: &Path) -> Result<Kubeconfig, MeshError> {
    Kubeconfig::read_from(p)
        .with_context(|| format!("cannot read kubeconfig `{}`", p.display()))
        .map_err(MeshError::usage)
}

fn check_name(kind: &str, wanted: Option<&String>, have: Vec<&str>) -> Result<(), MeshError> {
    match wanted {
        Some(w) if !have.contains(&w.as_str()) => Err(MeshError::usage(anyhow::anyhow!(
            "{kind} `{w}` is not in the kubeconfig"
        ))
        .hint(format!(
            "known {kind}s: {}",
            if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            }
        ))),
        _ => Ok(()),
    }
}

/// Validates the names asked for, so an unknown one is an error and not a fallback.
fn check_names(kc: &Kubeconfig, flags: &KubeFlags) -> Result<String, MeshError> {
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
    context.ok_or_else(|| {
        MeshError::usage(anyhow::anyhow!("the kubeconfig has no current context"))
            .hint("pass --context NAME or run `kubectl config use-context NAME`")
    })
}

/// Builds a client from kubectl-style flags.
pub async fn connect(flags: &KubeFlags) -> Result<Connection, MeshError> {
    let kc = load_kubeconfig(flags)?;
    let context = check_names(&kc, flags)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        cluster: flags.cluster.clone(),
        user: flags.user.clone(),
    };
    let mut config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| {
            MeshError::usage(
                anyhow::Error::new(e).context(format!("cannot use context `{context}`")),
            )
        })?;
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
    let client = kube::Client::try_from(config).map_err(|e| {
        MeshError::usage(anyhow::Error::new(e).context("cannot build a client for the kubeconfig"))
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

    fn flags(context: Option<&str>, user: Option<&str>) -> KubeFlags {
        KubeFlags {
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
        assert_eq!(
            err.error.to_string(),
            "context `prod` is not in the kubeconfig"
        );
        assert_eq!(err.hints, ["known contexts: admin"]);
        assert_eq!(err.status as u8, 2);
        assert!(check_names(&kc, &flags(None, Some("root"))).is_err());
    }

    #[test]
    fn missing_kubeconfig_flag_file_is_a_usage_error() {
        let f = KubeFlags {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            ..Default::default()
        };
        assert_eq!(kubeconfig_paths(&f).unwrap_err().status as u8, 2);
    }
}
