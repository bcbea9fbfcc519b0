"""The Open Inference Protocol (KServe v2): ``router`` (endpoints to engine calls), ``codec``
(infer request/response documents), ``tensors`` (JSON and binary tensor data)."""
