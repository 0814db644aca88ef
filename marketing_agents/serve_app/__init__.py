"""Ray Serve deployments: the REST API gateway, the lead orchestrator and the agents it calls."""
