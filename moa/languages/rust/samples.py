"""Short idiomatic rust snippets for the tiny test model (`LanguagePlugin.code_samples`)."""

CODE_SAMPLES = (
    "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    "#[test]\nfn it_adds() {\n    assert_eq!(add(2, 3), 5);\n}\n",
    "pub struct Stack<T> {\n    items: Vec<T>,\n}\n\nimpl<T> Stack<T> {\n    pub fn push(&mut self, x: T) {\n        self.items.push(x);\n    }\n}\n",
)
