"""Short idiomatic Java for the tiny test model's tokenizer and pretraining text."""

CODE_SAMPLES = (
    "public final class Add {\n    public static int add(int a, int b) {\n        return a + b;\n    }\n}\n",
    "@Test\nvoid addsTwoNumbers() {\n    assertEquals(5, Add.add(2, 3));\n}\n",
    "try (BufferedReader in = Files.newBufferedReader(path)) {\n    return Optional.ofNullable(in.readLine());\n}\n",
)
