"""MLflow registries: the ``Source`` (reconcile, scan, signed tags), webhooks, the server plugin, the demo.

Kept free of imports: the MLflow server loads ``server_plugin`` through this
package and must not pay for (or depend on) the controller's dependencies.
"""
