//! `kubectl_complete-mesh`: kubectl (≥ 1.26) runs this from `PATH` with the words typed
//! after `kubectl mesh` (the last one being completed, possibly empty) and shows the
//! candidates it prints, one per line, then `:<cobra directive>`.

fn main() -> std::process::ExitCode {
    kubectl_mesh::complete_main(std::env::args_os().skip(1).collect())
}
