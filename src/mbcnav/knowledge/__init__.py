"""Clinical knowledge: data files in ``data/`` plus the code that loads and checks them."""
