package sqlite

// Migrations are the schema's migrations, for a test to build a database of an older
// version.
var Migrations = migrations

// Queries are the dialect's statements, for a test to look at their plans.
var Queries = queries
