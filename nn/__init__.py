"""Neural-network building blocks: modules, functional ops, the course layer API, models."""
