import mbcnav


def test_public_api_is_pinned() -> None:
    assert sorted(mbcnav.__all__) == sorted(
        ["Profile", "ProfileError", "__knowledge_version__", "__version__", "recommend"]
    )
    assert mbcnav.__knowledge_version__.startswith("2026.")
