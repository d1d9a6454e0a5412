"""Side-by-side benchmarks: the plain PyTorch way against pixelforge, on the same data, model and resolution.

Run `python -m benchmarks` from the repository root (`--smoke` for a tiny run, `--only B1,B2` to select). Each pair
runs in this one process, alternating which side goes first, and prints baseline | pixelforge | ratio with the peak
memory of each side (B4) and the machine it ran on; the numbers are written to benchmarks/results/*.json.
"""
