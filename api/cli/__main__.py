from api.cli.main import app

app()
