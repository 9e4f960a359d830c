# Python's toolchain is the image's python3 (Debian's): moa, mutmut and the target venvs must
# share one interpreter version (mutmut imports the target's packages in-process).
: "${1:?usage: toolchain.sh DIR}"
python3 --version
