"""Store an exported generator's large weight tensors as fp16 (cast back to fp32 when the session loads).

    .venv/bin/python scripts/store_fp16.py models/NAME.onnx

Used by scripts/ship_model.sh when an export is over the 20 MB budget of models/: the file halves,
ONNX Runtime folds the Casts at load (it computes in fp32 as before), and the outputs move by
about 1e-3 at most (printed, and recorded in the card with the storage).  The file is replaced
atomically; its spec and card stay, so re-measure it with ``ctrlgen eval FILE --write-card`` (ship_model.sh does
both on its staging copy; eval refuses to rewrite the card of a file already in models/).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from ctrlgen.files import write_bytes
from ctrlgen.spec import CARD_KEY, SPEC_KEY, LatentSpec

MIN_ELEMENTS = 4096  # small tensors (biases, norms) stay fp32


def main(path: str) -> None:
    before = open(path, "rb").read()
    m = onnx.load_from_string(before)
    g = m.graph
    casts = []
    for init in list(g.initializer):
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= MIN_ELEMENTS:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
            g.initializer.remove(init)
            g.initializer.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "__cast"))
    for node in reversed(casts):
        g.node.insert(0, node)
    onnx.checker.check_model(m)
    props = {p.key: p for p in m.metadata_props}
    spec = LatentSpec.from_json(props[SPEC_KEY].value)
    feeds = spec.sample(256, seed=0)
    opts = ["CPUExecutionProvider"]
    a = ort.InferenceSession(before, providers=opts).run(["sample"], feeds)[0]
    b = ort.InferenceSession(m.SerializeToString(), providers=opts).run(["sample"], feeds)[0]
    diff = float(np.abs(a - b).max())
    card = json.loads(props[CARD_KEY].value)
    card["weights_storage"] = f"{len(casts)} weight tensors stored as fp16, cast to fp32 at load; max |output - fp32 file| = {diff:.2e} (256 samples)"
    props[CARD_KEY].value = json.dumps(card, sort_keys=True)
    data = m.SerializeToString()
    write_bytes(path, data)
    print(f"{path}: {len(before) / 1e6:.2f} MB -> {len(data) / 1e6:.2f} MB; {card['weights_storage']}")


if __name__ == "__main__":
    main(sys.argv[1])
