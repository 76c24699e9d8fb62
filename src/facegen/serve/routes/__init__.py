"""The service's routes, one module per concern; :func:`facegen.serve.app.create_app` includes them in this order:
:mod:`.generation` (``/generate``), :mod:`.operations` (health, readiness, metrics), :mod:`.feedback`, :mod:`.admin`.
"""
