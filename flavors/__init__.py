"""facegen's ZenML stack-component flavors (registered by scripts/register_kubeflow_stack.sh)."""
