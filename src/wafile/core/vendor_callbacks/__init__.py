"""Vendor-shaped callback bodies (and signatures), one pure module per dialect:
`build(event) -> body | None` from the native event document (core.callbacks), and
`sign(...)` where the vendor does not sign the Standard Webhooks way; registered in
core.callback_formats."""
