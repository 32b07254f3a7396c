"""A simulated GitHub for `forgehand sandbox` and the end-to-end tests.

Clearly not GitHub: an HTTP server on 127.0.0.1 that answers the REST calls forgehand makes,
hosts repositories as bare git repositories, runs a simulated CI and sends signed webhooks.
forgehand's own code paths (app/, jobs/) never import it.
"""
