# Go from the Go module proxy: the toolchain module `go` itself switches to (GOTOOLCHAIN).
# Module zips carry no file modes, so the executables are marked as such after unpacking.
DIR=${1:?usage: toolchain.sh DIR}
GO=1.26.8
moa-download "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO.linux-amd64.zip" \
  sha256:30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7 /tmp/go.zip
python3 -m zipfile -e /tmp/go.zip /tmp/go-unpacked
mv "/tmp/go-unpacked/golang.org/toolchain@v0.0.1-go$GO.linux-amd64" "$DIR/go"
rm -rf /tmp/go.zip /tmp/go-unpacked
chmod +x "$DIR"/go/bin/* "$DIR"/go/pkg/tool/*/*
ln -s ../go/bin/go ../go/bin/gofmt "$DIR/bin/"
"$DIR/bin/go" version
