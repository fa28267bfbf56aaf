"""Services: the Prefect server, the deployments that serve the flows, and the Dask cluster."""
