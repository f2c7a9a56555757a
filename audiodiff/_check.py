"""Fail early, with a clear message, when torch and torchaudio are not a matching pair."""
from __future__ import annotations


def check_torch_pair() -> None:
    """Import torch and torchaudio and check their versions agree (torchaudio 2.11 needs torch 2.11)."""
    import torch

    try:
        import torchaudio
    except Exception as e:  # an ABI mismatch shows up as an ImportError/OSError deep inside torchaudio
        raise SystemExit(
            f"torchaudio does not import next to torch {torch.__version__}: {e}\n"
            "audiodiff pins torch==2.11.0 and torchaudio==2.11.0 (constraints.txt): torchaudio's last release "
            "imports only with the torch built for the same CUDA. Reinstall with `make clean && make install`.")
    t = torch.__version__.split("+")[0].rsplit(".", 1)[0]
    a = torchaudio.__version__.split("+")[0].rsplit(".", 1)[0]
    if t != a:
        raise SystemExit(f"torch {torch.__version__} and torchaudio {torchaudio.__version__} differ; "
                         "pin both to 2.11.0 (constraints.txt)")
    print(f"torch {torch.__version__} + torchaudio {torchaudio.__version__}: ok")


if __name__ == "__main__":
    check_torch_pair()
