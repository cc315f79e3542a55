"""onnxruntime as a benchmark anchor that `kiln bench --compare-ort` drives over stdin/stdout.

Usage: python ort_server.py MODEL.onnx BATCH THREADS
Prints one JSON line when the session is ready ({"load_seconds": …}); then for each line
"run N" it runs N inferences on a fixed random batch and prints {"seconds": [...]} with the
wall time of each; "rss" prints {"peak_rss_bytes": …}; "quit" ends. A model whose batch is
fixed at n runs BATCH images as ⌈BATCH / n⌉ session runs of n, the work Kiln does for them.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    path, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    start = time.perf_counter()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - start
    inp = session.get_inputs()[0]
    shape = [batch if not isinstance(d, int) else d for d in inp.shape]
    groups = 1
    if isinstance(inp.shape[0], int) and inp.shape[0] != batch:
        groups = -(-batch // inp.shape[0])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feeds = {inp.name: x}
    print(json.dumps({"load_seconds": load, "input": inp.name, "shape": shape, "groups": groups}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "run":
            times = []
            for _ in range(int(cmd[1])):
                t = time.perf_counter()
                for _ in range(groups):
                    session.run(None, feeds)
                times.append(time.perf_counter() - t)
            print(json.dumps({"seconds": times}), flush=True)
        elif cmd[0] == "rss":
            # VmHWM, not getrusage: ru_maxrss of a spawned child starts from its parent's.
            with open("/proc/self/status") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
            print(json.dumps({"peak_rss_bytes": kb * 1024}), flush=True)


if __name__ == "__main__":
    main()
