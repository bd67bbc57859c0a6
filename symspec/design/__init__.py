"""Schedule design: divergences, the objective and its exact gradient, the optimiser,
heuristic baselines, and the error decomposition (:func:`diagnose`)."""

from .diagnosis import PARTS as PARTS
from .diagnosis import Diagnosis as Diagnosis
from .diagnosis import diagnose as diagnose
from .diagnosis import plot_diagnosis as plot_diagnosis
from .divergences import DIVERGENCES as DIVERGENCES
from .divergences import divergence as divergence
from .divergences import divergence_grad as divergence_grad
from .optimise import STARTS as STARTS
from .optimise import DesignWarning as DesignWarning
from .optimise import baseline_schedules as baseline_schedules
from .optimise import design_schedule as design_schedule
from .optimise import design_schedules as design_schedules
from .optimise import objective as objective
from .simulation import commitment as commitment
from .simulation import design_for_model as design_for_model
from .simulation import simulate as simulate
from .simulation import speciation_level as speciation_level
