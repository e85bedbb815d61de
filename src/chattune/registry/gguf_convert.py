"""Run llama.cpp's own ``convert_hf_to_gguf.py`` (from the llama-cpp-python sdist) on a model.

``python -m chattune.registry.gguf_convert LLAMA_CPP_DIR MODEL_DIR OUTFILE OUTTYPE``, in its
own process: the converter uses the ``gguf`` package of its own llama.cpp tree (gguf-py;
PyPI's gguf 0.19 predates what this converter calls), which must not shadow the ``gguf``
that transformers reads with in the calling process.

One hook: llama.cpp's Phi-3 vocabulary reader wants SentencePiece's ``tokenizer.model``;
a folder that has only the HF ``tokenizer.json`` (as tiny-random-phi3 and re-saved
fine-tunes do) is read with the converter's own HF-Llama vocabulary reader instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    llama_dir, model_dir, outfile, outtype = argv
    sys.path[:0] = [llama_dir, str(Path(llama_dir) / "gguf-py")]
    import convert_hf_to_gguf
    from conversion import phi

    original = phi.Phi3MiniModel.set_vocab

    def set_vocab(self: Any) -> None:
        if (self.dir_model / "tokenizer.model").is_file():
            original(self)
        else:
            self._set_vocab_llama_hf()

    phi.Phi3MiniModel.set_vocab = set_vocab
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outfile", outfile, "--outtype", outtype]
    convert_hf_to_gguf.main()


if __name__ == "__main__":
    main(sys.argv[1:])
