"""SQL text: the Spider-format tokenizer and parser (``tokenize``, ``parse``) and the safe executor."""
