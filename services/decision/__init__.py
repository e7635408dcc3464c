"""The Decision service: features -> live model -> policy -> logged answer."""
