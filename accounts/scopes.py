"""The scopes a service client may hold (PRODUCT.md): what its tokens may do in GraphQL and OAuth."""

USERS_READ = "users:read"
USERS_WRITE = "users:write"
TOKENS_INTROSPECT = "tokens:introspect"
SCOPES = (USERS_READ, USERS_WRITE, TOKENS_INTROSPECT)
