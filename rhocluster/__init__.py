"""rho-cluster: token selection by hierarchical clustering of reference-model token representations."""
