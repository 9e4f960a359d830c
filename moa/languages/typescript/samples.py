"""Short idiomatic typescript snippets for the tiny test model (`LanguagePlugin.code_samples`)."""

CODE_SAMPLES = (
    "export function add(a: number, b: number): number {\n  return a + b;\n}\n",
    "import { add } from './add';\n\ntest('adds', () => {\n  expect(add(2, 3)).toBe(5);\n});\n",
    "interface Item {\n  id: string;\n  count?: number;\n}\n",
)
