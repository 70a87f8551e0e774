#!/usr/bin/env bash
# Builds the krew release archives of kubectl-mesh and renders the krew manifest.
#
#   krew/release.sh [--platforms all|host|os/arch,...] [--out DIR] [--manifest FILE]
#                   [--profile release|dev|...] [--uri-base URL] [--require-all]
#   krew/release.sh --render-only [--out DIR] [--manifest FILE] [--uri-base URL] [--require-all]
#                                       # no build: render the manifest from the archives in DIR
#                                       # (the release workflow builds each platform on its own runner)
#   krew/release.sh --bot-template      # print krew/.krew.yaml (krew-release-bot template)
#
# For each platform (linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64; default
# all) it runs `cargo build --bins` of the workspace's default members, then packs the dispatcher
# kubectl-mesh, every subcommand binary (kubectl-mesh-{precheck,upgrade,tag,uninstall}; a build
# that did not produce one of them fails), kubectl_complete-mesh, LICENSE and README.md, flat (no
# directory prefix, no symlinks, binaries 0755), into DIR/kubectl-mesh-v<version>-<os>-<arch>.tar.gz
# (.zip on Windows).
# The host platform builds without --target (into the ordinary target dir); another platform is
# built only when its Rust std is installed (`rustup target add ...`) and skipped otherwise, or
# when its build fails (no cross linker); every skip is reported with its reason, and
# --require-all turns skips into a failure (use it for real releases). Then it renders
# krew/mesh.yaml.tmpl into FILE (default krew/mesh.yaml; krew requires the name `mesh.yaml`)
# with each archive's uri (<uri-base>/v<version>/<archive>; default the GitHub release of the
# workspace `repository`) and lowercase sha256, writes DIR/SHA256SUMS, and checks the manifest
# with validate-krew-manifest --skip-install when that is on PATH.
# Profiles other than `release` (debug builds, e.g. for the krew install test) have the debug info
# stripped from the packed copies of the host's binaries (`strip -S`, ~150 MB less per binary to
# compress, serve and unpack) and are compressed with gzip -1 instead of -9; the release profile is
# packed as cargo built it (already stripped).
# Environment: CARGO (default cargo), CARGO_TARGET_DIR, SOURCE_DATE_EPOCH (archive mtimes;
# default: the last commit's time).
set -euo pipefail

# Run under `cargo test` (the krew install test), this script inherits the variables cargo sets for
# the crate under test. Dependencies' build scripts that declare them with rerun-if-env-changed
# (ring does: CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...) would rerun, rebuilding ring, rustls, kube
# and every binary here, and again on the next plain `cargo build`: drop them.
unset OUT_DIR CARGO_MANIFEST_DIR CARGO_MANIFEST_PATH CARGO_MANIFEST_LINKS CARGO_CRATE_NAME \
  CARGO_BIN_NAME CARGO_PRIMARY_PACKAGE CARGO_TARGET_TMPDIR CARGO_RUSTC_CURRENT_DIR
for v in $(compgen -e); do
  case $v in CARGO_PKG_*) unset "$v" ;; esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
template=$root/krew/mesh.yaml.tmpl
cargo=${CARGO:-cargo}
all_platforms=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64)
# Every binary an archive must hold: the dispatcher, the subcommands, the completion helper.
bins=(kubectl-mesh kubectl-mesh-precheck kubectl-mesh-upgrade kubectl-mesh-tag kubectl-mesh-uninstall
  kubectl_complete-mesh)

log() { printf '[release] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$1" >&2; shift; for h in "$@"; do printf 'hint: %s\n' "$h" >&2; done; exit 2; }

# Rust targets for a platform, most portable first; the first with an installed std is used.
candidate_targets() {
  case $1 in
    linux/amd64) echo x86_64-unknown-linux-musl x86_64-unknown-linux-gnu ;;
    linux/arm64) echo aarch64-unknown-linux-musl aarch64-unknown-linux-gnu ;;
    darwin/amd64) echo x86_64-apple-darwin ;;
    darwin/arm64) echo aarch64-apple-darwin ;;
    windows/amd64) echo x86_64-pc-windows-msvc x86_64-pc-windows-gnu ;;
    *) return 1 ;;
  esac
}

platform_of_target() {
  case $1 in
    x86_64-*-linux-*) echo linux/amd64 ;;
    aarch64-*-linux-*) echo linux/arm64 ;;
    x86_64-apple-darwin) echo darwin/amd64 ;;
    aarch64-apple-darwin) echo darwin/arm64 ;;
    x86_64-pc-windows-*) echo windows/amd64 ;;
    *) echo unknown ;;
  esac
}

workspace_version() {
  "$cargo" pkgid --manifest-path "$root/Cargo.toml" -p kubectl-mesh | sed 's/.*[#@]//'
}

repository_url() {
  sed -n 's/^repository *= *"\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1
}

# render_manifest MODE TAG ENTRIES_FILE: MODE is `local` (ENTRIES_FILE lines: os arch archive uri
# sha256) or `bot` (every platform, krew-release-bot placeholders).
render_manifest() {
  local mode=$1 tag=$2 entries=$3 repo
  repo=$(repository_url)
  awk -v mode="$mode" -v tag="$tag" -v repo="$repo" -v entries="$entries" '
    function fill(s, os, arch, archive, uri, sha,   bin) {
      bin = (os == "windows") ? "kubectl-mesh.exe" : "kubectl-mesh"
      gsub(/\{\{TAG\}\}/, tag, s); gsub(/\{\{OS\}\}/, os, s); gsub(/\{\{ARCH\}\}/, arch, s)
      gsub(/\{\{ARCHIVE\}\}/, archive, s); gsub(/\{\{URI\}\}/, uri, s)
      gsub(/\{\{SHA256\}\}/, sha, s); gsub(/\{\{BIN\}\}/, bin, s)
      return s
    }
    function emit_block(os, arch, archive, uri, sha,   i, line) {
      for (i = 1; i <= nblock; i++) {
        line = block[i]
        if (mode == "bot" && line ~ /^ *sha256: \{\{SHA256\}\}/) continue
        if (mode == "bot" && line ~ /^ *uri: \{\{URI\}\}/) {
          sub(/uri: \{\{URI\}\}/, "{{ addURIAndSha \"" repo "/releases/download/{{ .TagName }}/" archive "\" .TagName }}", line)
        }
        print fill(line, os, arch, archive, uri, sha)
      }
    }
    /^## BEGIN PLATFORM/ { inblock = 1; next }
    /^## END PLATFORM/ {
      inblock = 0
      if (mode == "bot") {
        n = split("linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64", plats, " ")
        for (p = 1; p <= n; p++) {
          split(plats[p], oa, "/")
          ext = (oa[1] == "windows") ? "zip" : "tar.gz"
          emit_block(oa[1], oa[2], "kubectl-mesh-{{ .TagName }}-" oa[1] "-" oa[2] "." ext, "", "")
        }
      } else {
        while ((getline e < entries) > 0) {
          split(e, f, " ")
          emit_block(f[1], f[2], f[3], f[4], f[5])
        }
      }
      next
    }
    /^##/ { next }
    inblock { block[++nblock] = $0; next }
    { print fill($0, "", "", "", "", "") }
  ' "$template"
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

# pack STAGE_DIR ARCHIVE: a flat, reproducible archive of the files in STAGE_DIR.
pack() {
  local stage=$1 archive=$2 files
  files=$(cd "$stage" && LC_ALL=C ls -1)
  # shellcheck disable=SC2086 # file names are plain words
  (cd "$stage" && touch -d "@$SOURCE_DATE_EPOCH" $files 2>/dev/null || true)
  rm -f "$archive"
  case $archive in
    *.zip)
      if command -v zip >/dev/null; then
        # shellcheck disable=SC2086
        (cd "$stage" && zip -X -q "$archive" $files)
      else
        # shellcheck disable=SC2086
        (cd "$stage" && python3 -m zipfile -c "$archive" $files)
      fi ;;
    *)
      if tar --version 2>/dev/null | grep -q 'GNU tar'; then
        # shellcheck disable=SC2086
        tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
          -cf - $files | gzip -n "-$gzip_level" >"$archive"
      else
        # shellcheck disable=SC2086
        tar -C "$stage" -cf - $files | gzip -n "-$gzip_level" >"$archive"
      fi ;;
  esac
}

# build PLATFORM TARGET HOST: builds, stages and packs one platform; prints the manifest entry.
build_platform() {
  local platform=$1 target=$2 host=$3 os arch exe="" ext=tar.gz stage archive buildlog
  os=${platform%/*}; arch=${platform#*/}
  if [ "$os" = windows ]; then exe=.exe; ext=zip; fi
  archive="$out/kubectl-mesh-v$version-$os-$arch.$ext"
  stage="$work/$os-$arch"; buildlog="$out/build-$os-$arch.log"
  mkdir -p "$stage"
  local args=(build --manifest-path "$root/Cargo.toml" --profile "$profile" --bins
    --message-format=json-render-diagnostics)
  [ "$target" = "$host" ] || args+=(--target "$target")
  log "building $platform ($target, profile $profile)"
  if ! "$cargo" "${args[@]}" >"$work/cargo-$os-$arch.json" 2>"$buildlog"; then
    tail -n 15 "$buildlog" >&2
    [ "$target" != "$host" ] || die "cargo build failed for the host ($target); see $buildlog"
    skip "$platform" "cargo build --target $target failed (missing cross linker?); see $buildlog"
    return 0
  fi
  local b path
  for b in "${bins[@]}"; do
    path=$(grep -o "\"executable\":\"[^\"]*/$b$exe\"" "$work/cargo-$os-$arch.json" | tail -n1 \
      | sed 's/^"executable":"//; s/"$//') || true
    [ -n "$path" ] && [ -f "$path" ] \
      || die "cargo built no $b$exe for $target" \
        "every binary in \`bins\` of krew/release.sh must come from a default member of the workspace"
    install -m 0755 "$path" "$stage/$b$exe"   # copies the file itself, never a symlink
    if [ "$profile" != release ] && [ "$target" = "$host" ] && command -v strip >/dev/null; then
      strip -S "$stage/$b$exe" || log "could not strip the debug info of $b$exe; packing it whole"
    fi
  done
  install -m 0644 "$root/LICENSE" "$stage/LICENSE"
  install -m 0644 "$readme" "$stage/README.md"
  pack "$stage" "$archive"
  log "packed $(basename "$archive"): $(cd "$stage" && LC_ALL=C ls -1 | tr '\n' ' ')"
  printf '%s %s %s %s/v%s/%s %s\n' "$os" "$arch" "$(basename "$archive")" "$uri_base" "$version" \
    "$(basename "$archive")" "$(sha256_of "$archive")" >>"$work/entries"
}

skip() {
  skipped+=("$1: $2")
  log "SKIP $1: $2"
}

main() {
  local platforms=all manifest="$root/krew/mesh.yaml" require_all=0 render_only=0
  out="$root/dist"; profile=release; uri_base=""
  while [ $# -gt 0 ]; do
    case $1 in
      --bot-template)
        echo '# krew-release-bot template (action input krew_template_file: krew/.krew.yaml).'
        echo '# Generated by `krew/release.sh --bot-template > krew/.krew.yaml` from krew/mesh.yaml.tmpl.'
        render_manifest bot '{{ .TagName }}' /dev/null; return 0 ;;
      --platforms) platforms=$2; shift ;;
      --out) out=$2; shift ;;
      --manifest) manifest=$2; shift ;;
      --profile) profile=$2; shift ;;
      --uri-base) uri_base=${2%/}; shift ;;
      --require-all) require_all=1 ;;
      --render-only) render_only=1 ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return 0 ;;
      *) die "unknown argument \`$1\`" "run \`$0 --help\`" ;;
    esac
    shift
  done
  gzip_level=9
  [ "$profile" = release ] || gzip_level=1
  [ "$(basename "$manifest")" = mesh.yaml ] || die "the manifest must be named mesh.yaml (krew requires <plugin>.yaml)"
  [ -f "$root/LICENSE" ] || die "LICENSE is missing at the repository root"
  readme=$root/README.md
  [ -f "$readme" ] || readme=$root/krew/README.md
  mkdir -p "$out" "$(dirname "$manifest")"
  out=$(cd "$out" && pwd)
  version=$(workspace_version)
  [ -n "$uri_base" ] || uri_base="$(repository_url)/releases/download"
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  : >"$work/entries"
  skipped=()

  local host host_platform sysroot
  host=$(rustc -vV | sed -n 's/^host: //p')
  host_platform=$(platform_of_target "$host")
  sysroot=$(rustc --print sysroot)
  local list=()
  case $platforms in
    all) list=("${all_platforms[@]}") ;;
    host) list=("$host_platform") ;;
    *) IFS=, read -r -a list <<<"$platforms" ;;
  esac

  local p t chosen
  if [ $render_only -eq 1 ]; then
    list=()
    for p in "${all_platforms[@]}"; do
      local os=${p%/*} arch=${p#*/} ext=tar.gz a
      [ "$os" = windows ] && ext=zip
      a="$out/kubectl-mesh-v$version-$os-$arch.$ext"
      if [ -f "$a" ]; then
        printf '%s %s %s %s/v%s/%s %s\n' "$os" "$arch" "$(basename "$a")" "$uri_base" "$version" \
          "$(basename "$a")" "$(sha256_of "$a")" >>"$work/entries"
      else
        skip "$p" "no archive $(basename "$a") in $out"
      fi
    done
  fi
  for p in "${list[@]}"; do
    candidate_targets "$p" >/dev/null || die "unknown platform \`$p\`" "one of: ${all_platforms[*]}"
    chosen=""
    if [ "$p" = "$host_platform" ]; then
      chosen=$host
    else
      for t in $(candidate_targets "$p"); do
        if [ -d "$sysroot/lib/rustlib/$t/lib" ]; then chosen=$t; break; fi
      done
    fi
    if [ -z "$chosen" ]; then
      skip "$p" "no Rust std installed for $(candidate_targets "$p" | sed 's/ / or /g') (rustup target add $(candidate_targets "$p" | cut -d" " -f1))"
      continue
    fi
    build_platform "$p" "$chosen" "$host"
  done

  [ -s "$work/entries" ] || die "no archive was built"
  (cd "$out" && for a in $(cut -d' ' -f3 "$work/entries"); do
     printf '%s  %s\n' "$(sha256_of "$a")" "$a"; done) >"$out/SHA256SUMS"
  render_manifest local "v$version" "$work/entries" >"$manifest"
  log "wrote $manifest ($(wc -l <"$work/entries") platforms) and $out/SHA256SUMS"
  if command -v validate-krew-manifest >/dev/null; then
    validate-krew-manifest --manifest="$manifest" --skip-install 2>"$work/validate.log" \
      || { cat "$work/validate.log" >&2; die "validate-krew-manifest rejected $manifest"; }
    log "validate-krew-manifest --skip-install: OK"
  fi
  if [ ${#skipped[@]} -gt 0 ]; then
    log "skipped ${#skipped[@]} platform(s):"
    for p in "${skipped[@]}"; do log "  $p"; done
    [ $require_all -eq 0 ] || { printf 'error: --require-all and %d platform(s) skipped\n' "${#skipped[@]}" >&2; exit 1; }
  fi
}

main "$@"
