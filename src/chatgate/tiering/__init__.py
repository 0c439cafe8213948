"""Tiered routing: a routed name whose requests a local classifier sends to the cheapest tier
(a model_list group) that suffices. features.py scores what a request looks like, knn.py
votes over labelled examples embedded with MiniLM, classifier.py blends the two, session.py
keeps a conversation from dropping back, route.py runs a call through the chosen tier."""

__all__: list[str] = []
