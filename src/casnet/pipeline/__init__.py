"""One thin module per data stage: parse inputs, call the library, write a store.

Each stage reads a store (or the raw inputs), processes it chunk by chunk (memory bounded by the
chunk size) and writes its output through :class:`casnet.data.io.store.StoreWriter`, which makes the
write atomic and resumable.
"""
