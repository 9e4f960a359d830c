"""Short idiomatic python snippets for the tiny test model (`LanguagePlugin.code_samples`)."""

CODE_SAMPLES = (
    "def add(a, b):\n    return a + b\n",
    "import os\n\nfor name in sorted(os.listdir('.')):\n    print(name)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "def test_add():\n    assert add(2, 3) == 5\n",
)
