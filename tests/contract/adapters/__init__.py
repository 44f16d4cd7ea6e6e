"""The dialects the contract suite runs. A new dialect joins by writing its adapter (a subclass of
`base.DialectAdapter`) and adding one line here."""
from tests.contract.adapters.digit import DigitAdapter
from tests.contract.adapters.msupply import MsupplyAdapter
from tests.contract.adapters.synkronus import SynkronusAdapter

ADAPTERS = [
    SynkronusAdapter(),
    MsupplyAdapter(),
    DigitAdapter(),
]
