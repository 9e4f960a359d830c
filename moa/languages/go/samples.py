"""Short idiomatic go snippets for the tiny test model (`LanguagePlugin.code_samples`)."""

CODE_SAMPLES = (
    "package add\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n",
    'func TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal("want 5")\n\t}\n}\n',
    "type Stack struct {\n\titems []int\n}\n",
)
