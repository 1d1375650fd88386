"""Apollo's webhook: a receiver for phone/waterfall deliveries (``crmsync webhook serve``) and its URL."""
