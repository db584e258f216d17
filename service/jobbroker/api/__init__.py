"""HTTP layer: schemas, routes and problem responses. Never touches the database driver."""
