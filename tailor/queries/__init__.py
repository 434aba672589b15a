"""What a request asks for (params), and the live sid it names: registered or described over WAMP."""
