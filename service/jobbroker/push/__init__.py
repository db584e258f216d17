"""Push delivery: subscriptions' jobs POSTed to their URLs as Standard Webhooks."""
