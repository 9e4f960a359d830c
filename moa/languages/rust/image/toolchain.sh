# Rust via rustup (pinned rustup-init, minimal profile + clippy for the evaluator's lint).
# At run time only the toolchain's own bin/ is on PATH: no rustup proxy, no network.
DIR=${1:?usage: toolchain.sh DIR}
RUSTUP=1.28.2
RUST=1.95.0
moa-download "https://static.rust-lang.org/rustup/archive/$RUSTUP/x86_64-unknown-linux-gnu/rustup-init" \
  sha256:20a06e644b0d9bd2fbdbfd52d42540bdde820ea7df86e92e533c073da0cdd43c /tmp/rustup-init
chmod +x /tmp/rustup-init
RUSTUP_HOME=$DIR/rustup CARGO_HOME=/tmp/cargo-home /tmp/rustup-init -y -q --no-modify-path \
  --profile minimal --component clippy --default-toolchain "$RUST"
rm -rf /tmp/rustup-init /tmp/cargo-home "$DIR"/rustup/downloads "$DIR"/rustup/tmp
TOOLCHAIN=rustup/toolchains/$RUST-x86_64-unknown-linux-gnu
for tool in "$DIR/$TOOLCHAIN"/bin/*; do ln -s "../$TOOLCHAIN/bin/${tool##*/}" "$DIR/bin/"; done
# cargo finds its subcommands (cargo-clippy) on PATH, as it will in the image.
PATH="$DIR/bin:$PATH" cargo --version && PATH="$DIR/bin:$PATH" cargo clippy --version
